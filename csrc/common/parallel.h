// A minimal fork-join parallel_for on std::thread: the kernels own their threads so they never
// fight a second OpenMP runtime loaded by PyTorch.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace nmmfast {

// Calls fn(begin, end) on contiguous chunks of [0, n) on up to num_threads threads (the calling
// thread included), never giving a thread fewer than min_per_thread items.
template <typename Fn>
void parallel_for(int64_t n, int64_t min_per_thread, int num_threads, Fn&& fn) {
  if (n <= 0) return;
  const int64_t by_size = std::max<int64_t>(1, n / std::max<int64_t>(1, min_per_thread));
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(num_threads, by_size));
  if (workers == 1) {
    fn(int64_t{0}, n);
    return;
  }
  const int64_t chunk = (n + workers - 1) / workers;
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(workers);
  threads.reserve(workers - 1);
  for (int64_t w = 1; w < workers; ++w) {
    const int64_t begin = w * chunk, end = std::min(n, begin + chunk);
    if (begin >= end) break;
    threads.emplace_back([&, w, begin, end] {
      try {
        fn(begin, end);
      } catch (...) {
        errors[w] = std::current_exception();
      }
    });
  }
  try {
    fn(int64_t{0}, std::min(n, chunk));
  } catch (...) {
    errors[0] = std::current_exception();
  }
  for (auto& thread : threads) thread.join();
  for (auto& error : errors)
    if (error) std::rethrow_exception(error);
}

}  // namespace nmmfast
