import COpenBLAS

/// The one place that calls OpenBLAS. Row-major single-precision GEMM:
/// `C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C`.
///
/// FedDistill parallelises over the batch itself (see ``Parallel``) and runs each GEMM on one OpenBLAS thread,
/// so that two workers never contend for OpenBLAS's own thread pool; ``BLAS/setThreads(_:)`` exists for
/// measuring the library's own multi-threaded rate (the `bench` command's reference figure).
public enum BLAS {
    /// C = alpha·op(A)·op(B) + beta·C with leading dimensions equal to the row lengths of the stored matrices.
    @inline(__always)
    public static func gemm(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>,
                            lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil) {
        let lda = lda ?? (transposeA ? m : k)
        let ldb = ldb ?? (transposeB ? k : n)
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc ?? n))
    }

    /// Sets OpenBLAS's own thread count (process-wide).
    public static func setThreads(_ count: Int) { openblas_set_num_threads(Int32(max(1, count))) }

    /// OpenBLAS's current thread count.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// The OpenBLAS build description (core type and configuration).
    public static var configuration: String { String(cString: openblas_get_config()) }
}
