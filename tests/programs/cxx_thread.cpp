// std::thread, std::mutex and std::condition_variable: four workers sum disjoint ranges.
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

int main()
{
	std::mutex m;
	std::condition_variable done;
	int finished = 0;
	long total = 0;
	std::vector<std::thread> workers;
	for (int w = 0; w < 4; w++) {
		workers.emplace_back([&, w] {
			long sum = 0;
			for (long i = w * 1000; i < (w + 1) * 1000; i++)
				sum += i;
			std::lock_guard<std::mutex> guard(m);
			total += sum;
			finished++;
			done.notify_one();
		});
	}
	{
		std::unique_lock<std::mutex> lock(m);
		done.wait(lock, [&] { return finished == 4; });
	}
	for (auto &t : workers)
		t.join();
	std::printf("total %ld from %d threads\n", total, finished);
	return 0;
}
