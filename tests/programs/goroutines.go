// Goroutines, channels, select with time.After, sync.WaitGroup and a recovered nil-pointer
// panic (the runtime turns the SIGSEGV into a panic through its signal handler).
package main

import (
	"fmt"
	"sync"
	"time"
)

type node struct{ next *node }

func depth(n *node) (d int, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("recovered: %v", r)
		}
	}()
	for {
		n = n.next // dereferences nil at the end of the list
		d++
	}
}

func main() {
	results := make(chan int)
	var wg sync.WaitGroup
	for i := 1; i <= 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results <- i * i
		}(i)
	}
	go func() { wg.Wait(); close(results) }()
	sum := 0
	for r := range results {
		sum += r
	}
	fmt.Println("sum of squares", sum)

	never := make(chan int)
	select {
	case <-never:
		fmt.Println("impossible")
	case <-time.After(50 * time.Millisecond):
		fmt.Println("timed out as expected")
	}

	_, err := depth(&node{next: &node{}})
	fmt.Println(err)
}
