/// Conversions between .NET arrays and float64 tensors, and torch process set-up.
/// Every tensor the core works on is float64 on the CPU; a mask is a float64 tensor of the data's
/// shape holding 1.0 where a value is missing and 0.0 where it is observed.
module EMFlow.Tensors

#nowarn "9" // NativePtr over tensors' memory

open System
open System.Runtime.InteropServices
open TorchSharp

type Tensor = torch.Tensor

/// The element type used throughout: float64, so EM statistics accumulate without float32 drift.
let dtype = torch.float64

[<UnmanagedFunctionPointer(CallingConvention.Cdecl)>]
type private DataPointer = delegate of nativeint -> nativeint

// TorchSharp reads a tensor's memory through this export of its own native library, and keeps the address to itself;
// the library is loaded as TorchSharp's assembly resolves it, so it is the very one TorchSharp uses wherever the host
// put it (an application's native folder, a notebook kernel's package cache).
let private dataPointer : Lazy<DataPointer> =
    lazy
        (let library = NativeLibrary.Load("LibTorchSharp", typeof<torch.Tensor>.Assembly, Nullable())
         Marshal.GetDelegateForFunctionPointer<DataPointer>(NativeLibrary.GetExport(library, "THSTensor_data")))

/// The address of a CPU tensor's first element, for loops over a contiguous tensor's memory; valid while the tensor
/// lives. The element type is the caller's to get right.
let internal address<'T when 'T: unmanaged> (t: Tensor) : nativeptr<'T> =
    NativeInterop.NativePtr.ofNativeInt<'T> (dataPointer.Value.Invoke t.Handle)

/// Raises ArgumentNullException for null, ArgumentException unless `x` is a 2-D tensor (n, p); `name` is the
/// parameter the caller reports.
let requireMatrix (name: string) (x: Tensor) =
    if isNull (box x) then nullArg name
    if x.dim() <> 2L then
        invalidArg name (sprintf "must be a 2-D tensor (n, p); got %d dimensions" (x.dim()))

/// A (n, p) float64 tensor holding a copy of the array.
let ofArray2D (a: float[,]) : Tensor =
    let n, p = Array2D.length1 a, Array2D.length2 a
    let flat = Array.zeroCreate<float> (n * p)
    for i in 0 .. n - 1 do
        for j in 0 .. p - 1 do
            flat[i * p + j] <- a[i, j]
    torch.tensor(flat, dtype = dtype).reshape(int64 n, int64 p)

/// A (n) float64 tensor holding a copy of the array.
let ofArray (a: float[]) : Tensor = torch.tensor(Array.copy a, dtype = dtype)

/// Copies a 2-D tensor (any float dtype) into a new (n, p) array.
let toArray2D (t: Tensor) : float[,] =
    use c = t.detach().to_type(dtype).contiguous().cpu()
    let n, p = int c.shape[0], int c.shape[1]
    let flat = c.data<float>().ToArray()
    Array2D.init n p (fun i j -> flat[i * p + j])

/// A 0/1 mask tensor (n, p) as a bool[,], true where the entry is 1 (read as above 0.5).
let toMask2D (t: Tensor) : bool[,] = toArray2D t |> Array2D.map (fun v -> v > 0.5)

/// Copies a tensor of any shape into a flat array, in row-major order.
let toArray (t: Tensor) : float[] =
    use c = t.detach().to_type(dtype).contiguous().cpu()
    c.data<float>().ToArray()

/// The scalar value of a one-element tensor.
let scalar (t: Tensor) : float = t.detach().to_type(dtype).item<float>()

/// A mask tensor (n, p), 1.0 where the array holds NaN.
let nanMask (x: Tensor) : Tensor = x.isnan().to_type(dtype)

/// Sets the number of intra-op threads torch uses. On small shared machines one thread avoids
/// OpenMP spin contention, which otherwise slows torch by up to an order of magnitude.
let setThreads (n: int) =
    if n < 1 then invalidArg "threads" (sprintf "must be at least 1; got %d" n)
    torch.set_num_threads n

/// A torch generator seeded explicitly, so no library code touches the global seed.
let generator (seed: int64) = new torch.Generator(uint64 seed)

let private scalars = System.Collections.Concurrent.ConcurrentDictionary<float, Scalar>()

/// A torch Scalar from a float; comparisons such as `gt` overload on Scalar and Tensor, which F# cannot
/// choose between for a bare float. Scalars are cached and never freed: TorchSharp 0.107 passes a Scalar's raw
/// handle to native code, so a temporary Scalar can be finalized (when another thread triggers a collection) while
/// the call still reads it. The values used are a handful of constants and feature counts.
let sc (v: float) : Scalar = scalars.GetOrAdd(v, fun x -> Scalar.op_Implicit x)

let private intScalars = System.Collections.Concurrent.ConcurrentDictionary<int64, Scalar>()

/// An integer torch Scalar, cached and never freed like <see cref="sc"/>; integer tensors need integer Scalars
/// (an `add` on them refuses a floating-point alpha).
let scInt (v: int64) : Scalar = intScalars.GetOrAdd(v, fun x -> Scalar.op_Implicit x)

// TorchSharp's arithmetic operators on tensors (a + b, t * 0.5, 1.0 - t, t / n, ...), add(Tensor), square() and
// the one-argument arange create a Scalar that nothing keeps alive while native code reads it (see sc), so the
// library never calls them; the helpers below do the same arithmetic with kept Scalars. A value that depends on
// the data is held by `use` for the one call instead of the cache, which would grow without bound.

/// a + b (alpha 1, as TorchSharp's `+` passes).
let plus (a: Tensor) (b: Tensor) : Tensor = a.add(b, scInt 1L)

/// t · v.
let scaleBy (v: float) (t: Tensor) : Tensor =
    use s = Scalar.op_Implicit v
    t.mul(s)

/// t / v.
let divideBy (v: float) (t: Tensor) : Tensor =
    use s = Scalar.op_Implicit v
    t.div(s)

/// t + v.
let offsetBy (v: float) (t: Tensor) : Tensor =
    use s = Scalar.op_Implicit v
    t.add(s, scInt 1L)

/// 1 − t, computed as TorchSharp's `1.0 - t` does: −t + 1.
let oneMinus (t: Tensor) : Tensor = t.neg().add(sc 1.0, scInt 1L)

/// 0, 1, …, n − 1 as an int64 tensor.
let range (n: int64) : Tensor =
    use stop = Scalar.op_Implicit n
    torch.arange(scInt 0L, stop, scInt 1L, dtype = torch.int64)

/// A seed for the `stream`-th independent random choice derived from one user seed (SplitMix64 mixing).
/// Deriving seeds as seed + k would make streams collide with a user's own seed + k, e.g. a mask drawn
/// with seed 2 and a hold-out drawn with 1 + 1 would use identical uniforms.
let deriveSeed (seed: int64) (stream: int) : int64 =
    let mutable z = uint64 seed + 0x9E3779B97F4A7C15UL * uint64 (stream + 1)
    z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
    z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
    int64 ((z ^^^ (z >>> 31)) >>> 1)

module private Native =
    [<DllImport("libc", EntryPoint = "malloc_trim")>]
    extern int mallocTrim(unativeint pad)

/// Hands memory that glibc keeps after freeing many large tensors back to the system (malloc_trim). Passes that
/// allocate and free thousands of blocks of megabytes (kNN over a large table) otherwise leave the resident set
/// gigabytes above what is live. Does nothing where there is no glibc.
let releaseFreedMemory () =
    if OperatingSystem.IsLinux() then
        try Native.mallocTrim 0un |> ignore
        with :? DllNotFoundException | :? EntryPointNotFoundException -> ()

/// The process's resident set in bytes (Linux: /proc/self/statm), or 0 where it cannot be read.
let residentBytes () : int64 =
    try
        if OperatingSystem.IsLinux() then
            let fields = System.IO.File.ReadAllText("/proc/self/statm").Split(' ')
            int64 fields[1] * int64 Environment.SystemPageSize
        else 0L
    with _ -> 0L

/// Calls <see cref="releaseFreedMemory"/> only when the resident set has grown by more than `bytes` since the last
/// call that trimmed, and returns the resident set to compare with next time. A trim hands freed pages back, and the
/// next allocation faults them in again, so trimming after every block of work cost kNN two thirds of its time.
let releaseFreedMemoryAbove (bytes: int64) (since: int64) : int64 =
    let now = residentBytes ()
    if now - since > bytes then
        releaseFreedMemory ()
        residentBytes ()
    else since

