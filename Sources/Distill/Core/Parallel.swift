import Dispatch
import Foundation
import COpenBLAS
import Synchronization

/// Data-parallel loops over the batch: the non-GEMM work and the per-chunk GEMMs.
///
/// The worker count is `FEDDISTILL_THREADS` if set, else the number of active processors, and can be changed with
/// ``Parallel/setThreads(_:)`` (the `--threads` flag). Work is split into contiguous static ranges, one per
/// worker, so a fixed seed and thread count give bit-identical results.
public enum Parallel {
    private static let workerCount = Atomic<Int>(Parallel.defaultThreads())

    private static func defaultThreads() -> Int {
        BLAS.setThreads(1)  // each worker calls single-threaded GEMM
        keepLargeBlocksInHeap()
        if let text = ProcessInfo.processInfo.environment["FEDDISTILL_THREADS"], let n = Int(text), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }

    /// Activations are large (a 256-image batch through ConvNet-3 w128 makes 134 MB tensors). glibc would map and
    /// unmap each one, paying a page fault per 4 KiB on every pass (14 s of system time in `bench`); this keeps freed
    /// memory in the heap instead. It also puts every thread on the main arena: a thread's own arena maps blocks
    /// above 64 MB whatever `M_MMAP_MAX` says, and the numerics run off the main thread. Call it first thing in
    /// `main`, before other threads allocate (a thread keeps the arena of its first allocation); later calls only
    /// help threads that have not allocated yet.
    public static func keepLargeBlocksInHeap() {
        #if os(Linux)
        mallopt(M_ARENA_MAX, 1)
        mallopt(M_MMAP_MAX, 0)
        mallopt(M_TRIM_THRESHOLD, Int32.max)
        #endif
    }

    /// The number of workers parallel loops use.
    public static var threads: Int { workerCount.load(ordering: .relaxed) }

    /// Sets the number of workers (at least 1).
    public static func setThreads(_ count: Int) {
        BLAS.setThreads(1)
        workerCount.store(max(1, count), ordering: .relaxed)
    }

    /// Calls `body(worker, range)` for contiguous ranges covering `0..<count`, one per worker, in parallel.
    /// Ranges depend only on `count` and the worker count.
    public static func forRanges(_ count: Int, _ body: (_ worker: Int, _ range: Range<Int>) -> Void) {
        guard count > 0 else { return }
        let workers = min(threads, count)
        if workers == 1 {
            body(0, 0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            let box = UnsafeSendableBox(body)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                box.value(w, (w * count / workers)..<((w + 1) * count / workers))
            }
        }
    }

    /// Calls `body(i)` for every `i` in `0..<count`, split across workers.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        forRanges(count) { _, range in for i in range { body(i) } }
    }

    /// Runs heavy numerics on a thread of its own (16 MiB stack), so that Swift's cooperative pool keeps serving
    /// RPCs and timers while a distillation, merge or audit runs.
    public static func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            startThread { continuation.resume(with: Result { try body() }) }
        }
    }

    /// Starts `body` on a new thread with a 16 MiB stack (the numerics recurse through deep layer stacks).
    public static func startThread(_ body: @escaping @Sendable () -> Void) {
        let thread = Thread(block: body)
        thread.stackSize = 16 << 20
        thread.start()
    }
}

/// Carries a non-Sendable closure into `concurrentPerform`. Safe here because each worker touches a disjoint
/// range of the output, and the closure does not outlive the call.
struct UnsafeSendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
