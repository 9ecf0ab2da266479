// Rust std: hello, four threads over an Arc<Mutex<_>> and a channel.
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

fn main() {
    println!("hello from rust");
    let total = Arc::new(Mutex::new(0u64));
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::new();
    for w in 0..4u64 {
        let total = Arc::clone(&total);
        let tx = tx.clone();
        handles.push(thread::spawn(move || {
            let sum: u64 = (w * 1000..(w + 1) * 1000).sum();
            *total.lock().unwrap() += sum;
            tx.send(w).unwrap();
        }));
    }
    drop(tx);
    for h in handles {
        h.join().unwrap();
    }
    let mut seen: Vec<u64> = rx.iter().collect();
    seen.sort();
    println!("total {} from {:?}", *total.lock().unwrap(), seen);
}
