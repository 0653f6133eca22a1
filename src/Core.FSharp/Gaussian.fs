/// The multivariate Gaussian pieces of the E-step: conditional means and covariances for a batch of rows
/// that each have their own missing pattern, log-densities with a full covariance, and a Cholesky that
/// tolerates a nearly singular covariance.
module EMFlow.Gaussian

#nowarn "9" // NativePtr over tensors' memory

open System
open Microsoft.FSharp.NativeInterop
open TorchSharp
open EMFlow.Tensors

/// The E-step of one batch.
type Conditional =
    { /// (B, p): observed entries as given, missing entries replaced by their conditional mean.
      Imputed: Tensor
      /// (p, p): Σ_i C̃_i, the conditional covariances of the batch's rows, each placed in its own
      /// (missing, missing) block of a p × p zero matrix and summed (the extra term of eq. 22).
      CovarianceSum: Tensor
      /// (B): log N(z_o; μ_o, Σ_oo) of each row's observed entries under the parameters given, the
      /// observed-data log-likelihood EM climbs (0 for a fully missing row).
      LogLikelihood: Tensor }

let private jitters = [| 0.0; 1e-10; 1e-8; 1e-6; 1e-4 |]

/// Lower Cholesky factor (p, p) of a symmetric positive-definite matrix. A factorisation that fails adds
/// jitter proportional to the mean diagonal (1e-10 up to 1e-4 of it) before giving up, because an online
/// covariance estimate can lag into near-singularity while the data are still fine.
/// Raises InvalidOperationException when the matrix stays indefinite, or holds NaN or infinity.
let cholesky (sigma: Tensor) : Tensor =
    let p = sigma.shape[0]
    if not (sigma.isfinite().all().item<bool>()) then
        raise (InvalidOperationException "The covariance holds NaN or infinite entries; the model has diverged.")
    let scale = max (scalar (sigma.diagonal().abs().mean())) 1e-300
    let rec attempt k =
        if k = jitters.Length then
            raise (InvalidOperationException(
                sprintf "The covariance (%d x %d) is not positive definite, even with jitter of %g times its mean diagonal. Check for duplicated or linearly dependent columns." p p jitters[jitters.Length - 1]))
        else
            let a = if jitters[k] = 0.0 then sigma else plus sigma (torch.eye(p, dtype = sigma.dtype) |> scaleBy (jitters[k] * scale))
            let struct (l, info) = torch.linalg.cholesky_ex(a)
            if info.item<int>() = 0 then l else attempt (k + 1)
    attempt 0

/// Precision matrix Σ⁻¹ (p, p) through the Cholesky factor, symmetrised against round-off.
let precision (sigma: Tensor) : Tensor =
    let l = cholesky sigma
    let inv = torch.cholesky_inverse(l)
    plus inv inv.T |> scaleBy 0.5

/// log N(z_i; μ, L Lᵀ) for each row, (B), from the lower Cholesky factor L of Σ.
let private logDensityFactor (mu: Tensor) (l: Tensor) (z: Tensor) : Tensor =
    let p = float z.shape[1]
    let d = (z - mu).T
    let y = torch.linalg.solve_triangular(l, d, upper = false)
    let maha = (y * y).sum(dim = 0L)
    let logDet = l.diagonal().log().sum() |> scaleBy 2.0
    plus maha logDet |> offsetBy (p * Math.Log(2.0 * Math.PI)) |> scaleBy -0.5

/// log N(z_i; μ, Σ) for each row, (B). Differentiable in z (the flow is trained through it); μ and Σ enter
/// as given.
let logDensity (mu: Tensor) (sigma: Tensor) (z: Tensor) : Tensor =
    logDensityFactor mu (cholesky sigma) z

// Rows per chunk of K × K blocks. Rows come sorted by block size and each chunk pads to its largest block, so
// smaller chunks pad less; (chunk, K, K) temporaries of 2^19 doubles (4 MB) stay in cache for the gather, the
// factorisation and the sum into (p, p) while still holding every row of a batch when blocks are small, where the
// dozen torch calls a chunk costs would otherwise dominate.
let private chunkRows (k: int64) (b: int64) =
    max 1L (min b ((1L <<< 19) / (k * k)))

/// For each row, the indices of its `selected` features first (1.0 in `selected`), then padding: position j
/// of the padding holds p + j. Against a matrix extended by <see cref="withIdentity"/> the gathered block is the
/// row's block with identity on padding, and sums of blocks put padding outside the leading (p, p).
/// Returns the (B, K) indices and K, the largest count.
let private packIndices (selected: Tensor) =
    let p = selected.shape[1]
    let counts = selected.sum(dim = 1L)
    let k = max 1L (int64 (scalar (counts.max())))
    let struct (_, order) = torch.sort(selected, dim = 1L, descending = true, stable = true)
    let pos = (range k).unsqueeze(0)
    use padding = Scalar.op_Implicit p
    let idx = torch.where(pos.lt(counts.unsqueeze(1)), order.narrow(1L, 0L, k), pos.add(padding, scInt 1L))
    idx, k

/// The (p + k, p + k) matrix with m in the leading block and the identity after it.
let private withIdentity (m: Tensor) (k: int64) =
    let p = m.shape[0]
    let out = torch.zeros(p + k, p + k, dtype = dtype)
    out.narrow(0L, 0L, p).narrow(1L, 0L, p).copy_(m) |> ignore
    out.diagonal().narrow(0L, p, k).fill_(sc 1.0) |> ignore
    out

/// (B·K·K) positions of each row's K × K block in a row-major (q, q) matrix, for gathering and for summing
/// blocks back.
let private blockPositions (idx: Tensor) (q: int64) =
    use rowStride = Scalar.op_Implicit q
    (plus (idx.unsqueeze(2).mul(rowStride)) (idx.unsqueeze(1))).reshape(-1L)

/// Lower factor (B, K, K) and inverse (B, K, K) of each row's block of a symmetric positive-definite matrix
/// extended by <see cref="withIdentity"/>, gathered at `positions`; both are the identity on padding, exactly, as
/// the factorisation never mixes the padding with the block. Cholesky then cholesky_inverse is the fastest
/// correct batched inverse on the CPU: LU (linalg.inv) is several times slower, and solving against the
/// identity costs a full second pass.
let private blockInverse (extended: Tensor) (positions: Tensor) (b: int64) (k: int64) =
    let l = torch.linalg.cholesky(extended.reshape(-1L).index_select(0L, positions).reshape(b, k, k))
    l, torch.cholesky_inverse(l)

/// Precision form for rows whose missing block is the smaller: C = (Λ_mm)⁻¹, ẑ_m = μ_m − C Λ_mo (z_o − μ_o).
/// `lambda` is Λ extended by <see cref="withIdentity"/> to (q, q), `r` (B, q) is (z − μ) with missing entries
/// zeroed, times Λ, zero after p. Adds each C into `covAcc` when given (q·q, padding beyond the leading (p, p)) and
/// returns the shift of the missing entries from μ (B, p; zero elsewhere), the per-row covariances in (p, p) if asked
/// for, and log det C (B) if asked for.
let private missingBlockForm (lambda: Tensor) (r: Tensor) (mask: Tensor) (covAcc: Tensor option) (perRow: bool) (logDet: bool) =
    let b, p, q = mask.shape[0], mask.shape[1], lambda.shape[0]
    let idx, k = packIndices mask
    let positions = blockPositions idx q
    let l, c = blockInverse lambda positions b k
    // Padding carries r = 0, hence x = 0.
    let x = c.bmm(r.gather(1L, idx).unsqueeze(2)).squeeze(2)
    let shift = torch.zeros(b, q, dtype = dtype).scatter_(1L, idx, x.neg()).narrow(1L, 0L, p)
    covAcc |> Option.iter (fun acc -> acc.index_add_(0L, positions, c.reshape(-1L), sc 1.0) |> ignore)
    let rows =
        if perRow then
            // Padding zeroed and pointed inside (p, p), so the B p² result needs no extended copy.
            let real = idx.lt(sc (float p)).to_type(dtype)
            use blockStride = Scalar.op_Implicit (p * p)
            let offsets = (range b).mul(blockStride).repeat_interleave(k * k)
            let inside = blockPositions (torch.minimum(idx, torch.tensor(p - 1L))) p
            let values = (c * (real.unsqueeze(2) * real.unsqueeze(1))).reshape(-1L)
            Some (torch.zeros(b * p * p, dtype = dtype).index_add(0L, plus offsets inside, values, sc 1.0).reshape(b, p, p))
        else None
    // log det C = −log det Λ_mm; padding sits on the diagonal as 1 and adds nothing.
    let logDetC = if logDet then Some (l.diagonal(dim1 = -2L, dim2 = -1L).log().sum(dim = 1L) |> scaleBy -2.0) else None
    shift, rows, logDetC

/// Observed-block form for rows whose observed block is the smaller: ẑ_m = μ_m + Σ_mo Σ_oo⁻¹ (z_o − μ_o),
/// C = Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om. Fully missing rows land here (empty observed block: ẑ = μ, C = Σ).
/// The row's conditional covariance of all p entries is Σ − Σ W Σ with W = Σ_oo⁻¹ placed in (o, o): it is C
/// on (m, m) and zero elsewhere. Σ is shared by every row, so the batch's sum is nΣ − Σ (Σ_i W_i) Σ and each
/// row only contributes its o × o inverse, added into `wAcc` (q·q, padding beyond the leading (p, p)).
/// `sigmaExt` is Σ extended by <see cref="withIdentity"/> to (q, q), `d` (B, q) is z − μ with missing entries
/// zeroed, zero after p. Returns Σ_oo⁻¹ (z_o − μ_o) placed at the observed positions (B, p; the shift of the
/// missing entries from μ is this times Σ), the per-row covariances in (p, p) if asked for, and log det C (B) when
/// log det Σ is given. `wAcc` is skipped when not given.
let private observedBlockForm (sigmaExt: Tensor) (logDetSigma: Tensor option) (d: Tensor) (mask: Tensor) (wAcc: Tensor option) (perRow: bool) =
    let b, p, q = mask.shape[0], mask.shape[1], sigmaExt.shape[0]
    let idx, k = packIndices (oneMinus mask)
    let positions = blockPositions idx q
    let l, s = blockInverse sigmaExt positions b k
    // Padding carries d = 0, hence w = 0.
    let w = s.bmm(d.gather(1L, idx).unsqueeze(2)).squeeze(2)
    let spread = torch.zeros(b, q, dtype = dtype).scatter_(1L, idx, w).narrow(1L, 0L, p)
    wAcc |> Option.iter (fun acc -> acc.index_add_(0L, positions, s.reshape(-1L), sc 1.0) |> ignore)
    let rows =
        if perRow then
            // Rows of the extended Σ at padding are unit vectors beyond p: zero in the leading p columns.
            let a = sigmaExt.index_select(0L, idx.reshape(-1L)).reshape(b, k, q).narrow(2L, 0L, p)
            let v = torch.linalg.solve_triangular(l, a, upper = false) * mask.unsqueeze(1)
            let mm = mask.unsqueeze(2) * mask.unsqueeze(1)
            let sigma = sigmaExt.narrow(0L, 0L, p).narrow(1L, 0L, p)
            Some (sigma.unsqueeze(0) * mm - v.transpose(1L, 2L).bmm(v))
        else None
    // det Σ = det Σ_oo · det C (Schur complement), so log det C = log det Σ − log det Σ_oo.
    let logDetC = logDetSigma |> Option.map (fun ld -> ld - (l.diagonal(dim1 = -2L, dim2 = -1L).log().sum(dim = 1L) |> scaleBy 2.0))
    spread, rows, logDetC

/// The rows where `group` is true, sorted by block size so that each chunk pads only to the largest block
/// among rows of similar size, with their sizes; None for an empty group.
let private sortedGroup (group: Tensor) (blockSize: Tensor) =
    let unsorted = group.nonzero().squeeze(1)
    if unsorted.shape[0] = 0L then None
    else
        let sizes = blockSize.index_select(0L, unsorted)
        let order = sizes.argsort()
        Some (unsorted.index_select(0L, order), toArray (sizes.index_select(0L, order)) |> Array.map int64)

/// Calls `body part start len` on consecutive chunks of the sorted `members`, each sized by its largest block.
let private forChunks (members: Tensor) (sizes: int64[]) (body: Tensor -> int64 -> int64 -> unit) =
    let count = int64 sizes.Length
    let mutable start = 0L
    while start < count do
        let fits len = chunkRows (max 1L sizes[int (start + len - 1L)]) (count - start)
        // Sizes grow along the chunk, so shrinking it to fit its last block terminates.
        let mutable len = fits 1L
        while fits len < len do len <- fits len
        body (members.narrow(0L, start, len)) start len
        start <- start + len

/// Runs the cheaper form for each row. Both factorise and invert one block per row, K³ operations for a
/// K × K block (K³/3 Cholesky, 2K³/3 inverse), and gather and sum K² entries, about as dear as 50 K operations:
/// the precision form inverts the missing block of Λ = Σ⁻¹, the covariance form the observed block of Σ. Each
/// form also has a cost per batch: Λ itself (2p³/3, from the Cholesky of Σ both need) for the precision form,
/// the two p × p products of Σ (Σ W) Σ (4p³) for the covariance form, and a few dozen torch calls (counted as
/// 5·10⁶). Rows take their smaller block unless one form's cost per batch outweighs what its rows save; rows are
/// grouped so each group needs one batched factorisation per chunk, padded to the chunk's largest block.
/// `covariance` asks for the covariance sum and `logDet` for log det C per row; without them those come back zero,
/// and their work is skipped (re-imputation needs neither, a training step no log-determinants).
let private conditionalCore (mu: Tensor) (sigma: Tensor) (l: Tensor) (z: Tensor) (mask: Tensor) (perRow: bool) (covariance: bool) (logDet: bool) =
    let n, p = z.shape[0], z.shape[1]
    let missing = mask.sum(dim = 1L)
    let observed = missing.neg().add(sc (float p), scInt 1L)
    let pf = float p
    let blockCost (k: Tensor) = plus (k.pow(sc 3.0)) (k.pow(sc 2.0) |> scaleBy 50.0)
    let callCost = 5e6
    let precisionCost = blockCost missing
    // Fully observed rows need nothing: no shift, no covariance, log det C = 0; they cost neither form.
    let hasMissing = missing.gt(sc 0.5)
    let observedCost = blockCost observed * hasMissing.to_type(dtype)
    let precisionFixed, observedFixed = 2.0 / 3.0 * pf ** 3.0 + callCost, 4.0 * pf ** 3.0 + callCost
    let cheaper = precisionCost.le(observedCost)
    let allPrecision = scalar (precisionCost.sum()) + precisionFixed
    let allObserved = scalar (observedCost.sum()) + observedFixed
    let split = scalar (torch.minimum(precisionCost, observedCost).sum()) + precisionFixed + observedFixed
    let useMissingBlock =
        if split < allPrecision && split < allObserved then cheaper
        elif allPrecision <= allObserved then torch.ones_like(cheaper)
        else torch.zeros_like(cheaper)
    let logDetSigma = if logDet then Some (l.diagonal().log().sum() |> scaleBy 2.0) else None
    let d = (z - mu) * oneMinus mask
    let shift = torch.zeros(n, p, dtype = dtype)
    let covSum = torch.zeros(p, p, dtype = dtype)
    let rows = if perRow then Some (torch.zeros(n, p, p, dtype = dtype)) else None
    let logDetC = torch.zeros(n, dtype = dtype)
    let record (part: Tensor) (r: Tensor option) (ld: Tensor option) =
        ld |> Option.iter (fun ld -> logDetC.index_copy_(0L, part, ld) |> ignore)
        match rows, r with
        | Some all, Some rr -> all.index_copy_(0L, part, rr) |> ignore
        | _ -> ()
    let precisionRows = sortedGroup (useMissingBlock.logical_and(hasMissing)) missing
    let observedRows = sortedGroup (useMissingBlock.logical_not().logical_and(hasMissing)) observed
    match precisionRows with
    | Some (members, sizes) ->
        let lambda = torch.cholesky_inverse(l)
        let lambda = plus lambda lambda.T |> scaleBy 0.5
        let kMax = max 1L (Array.max sizes)
        let q = p + kMax
        let covAcc = if covariance then Some (torch.zeros(q * q, dtype = dtype)) else None
        // (z_o − μ_o) Λ for the whole group in one product, not one per chunk.
        let r = torch.zeros(members.shape[0], q, dtype = dtype)
        r.narrow(1L, 0L, p).copy_(d.index_select(0L, members).matmul(lambda)) |> ignore
        let lambdaExt = withIdentity lambda kMax
        forChunks members sizes (fun part start len ->
            let sh, rr, ld = missingBlockForm lambdaExt (r.narrow(0L, start, len)) (mask.index_select(0L, part)) covAcc perRow logDet
            shift.index_copy_(0L, part, sh) |> ignore
            record part rr ld)
        covAcc |> Option.iter (fun acc -> covSum.add_(acc.reshape(q, q).narrow(0L, 0L, p).narrow(1L, 0L, p), scInt 1L) |> ignore)
    | None -> ()
    match observedRows with
    | Some (members, sizes) ->
        let count = members.shape[0]
        let kMax = max 1L (Array.max sizes)
        let q = p + kMax
        let wAcc = if covariance then Some (torch.zeros(q * q, dtype = dtype)) else None
        let dExt = torch.zeros(n, q, dtype = dtype)
        dExt.narrow(1L, 0L, p).copy_(d) |> ignore
        let sigmaExt = withIdentity sigma kMax
        let spread = torch.zeros(count, p, dtype = dtype)
        forChunks members sizes (fun part start len ->
            let w, rr, ld = observedBlockForm sigmaExt logDetSigma (dExt.index_select(0L, part)) (mask.index_select(0L, part)) wAcc perRow
            spread.narrow(0L, start, len).copy_(w) |> ignore
            record part rr ld)
        shift.index_copy_(0L, members, spread.matmul(sigma)) |> ignore
        wAcc |> Option.iter (fun acc ->
            let w = acc.reshape(q, q).narrow(0L, 0L, p).narrow(1L, 0L, p)
            covSum.add_((sigma |> scaleBy (float count)) - sigma.matmul(w).matmul(sigma), scInt 1L) |> ignore)
    | None -> ()
    let imputed = plus (z * oneMinus mask) ((plus mu shift) * mask)
    imputed, rows, (plus covSum covSum.T |> scaleBy 0.5), logDetC

/// Tables of at most this many columns take the E-step by missingness pattern (<see cref="byPattern"/>).
let private patternColumns = 32

/// One missingness pattern's share of the E-step: observed indices O and missing M, the lower Cholesky factor L of
/// Σ_OO (|O|, |O|, row-major), V = L⁻¹ Σ_OM (|O|, |M|), the conditional covariance C = Σ_MM − VᵀV (|M|, |M|),
/// log det Σ_OO, and how many rows have it.
type private Pattern =
    { Observed: int[]; Missing: int[]; Factor: float[]; V: float[]; C: float[]; LogDet: float; mutable Rows: int }

/// The pattern's matrices from Σ (p, p, row-major); None when Σ_OO is not positive definite.
let private patternOf (sigma: float[]) (p: int) (observed: int[]) (missing: int[]) : Pattern option =
    let o, m = observed.Length, missing.Length
    let l = Array.zeroCreate<float> (o * o)
    let mutable ok = true
    let mutable logDet = 0.0
    for i in 0 .. o - 1 do
        for j in 0 .. i do
            let mutable v = sigma[observed[i] * p + observed[j]]
            for k in 0 .. j - 1 do v <- v - l[i * o + k] * l[j * o + k]
            if i = j then
                // Not positive definite, or not a number: leave it to the batched path, which jitters or raises.
                if not (v > 0.0) then ok <- false
                let d = sqrt (max v Double.Epsilon)
                l[i * o + i] <- d
                logDet <- logDet + 2.0 * log d
            else l[i * o + j] <- v / l[j * o + j]
    if not ok then None
    else
        let vm = Array.zeroCreate<float> (o * m)
        for c in 0 .. m - 1 do
            for i in 0 .. o - 1 do
                let mutable v = sigma[observed[i] * p + missing[c]]
                for k in 0 .. i - 1 do v <- v - l[i * o + k] * vm[k * m + c]
                vm[i * m + c] <- v / l[i * o + i]
        let cm = Array.zeroCreate<float> (m * m)
        for a in 0 .. m - 1 do
            for b in a .. m - 1 do
                let mutable v = sigma[missing[a] * p + missing[b]]
                for k in 0 .. o - 1 do v <- v - vm[k * m + a] * vm[k * m + b]
                cm[a * m + b] <- v
                cm[b * m + a] <- v
        Some { Observed = observed; Missing = missing; Factor = l; V = vm; C = cm; LogDet = logDet; Rows = 0 }

/// The E-step of <see cref="conditional"/> row by row, each distinct missingness pattern factorised once: on tables of
/// a few columns a batch holds a few dozen patterns, and the batched form's hundred-odd torch calls cost far more than
/// the arithmetic. Returns the imputed rows (B, p), the covariance sum (p, p) when asked for (else zeros) and the
/// observed-data log-likelihood per row (B) when asked for (else zeros); None for a table wider than
/// <see cref="patternColumns"/>, or when Σ holds a non-finite entry or a pattern's Σ_OO is not positive definite, which
/// the batched form handles (jitter, or a clear exception).
let private byPattern (mu: Tensor) (sigma: Tensor) (z: Tensor) (mask: Tensor) (covariance: bool) (logLik: bool) : (Tensor * Tensor * Tensor) option =
    let n, p = int z.shape[0], int z.shape[1]
    if p > patternColumns then None
    else
        let cov = (sigma.to_type(dtype).contiguous()).data<float>().ToArray()
        let mus = (mu.to_type(dtype).contiguous()).data<float>().ToArray()
        if not (Array.forall Double.IsFinite cov) then None
        else
            use zc = z.to_type(dtype).contiguous()
            use mc = mask.to_type(dtype).contiguous()
            let imputed = torch.empty(int64 n, int64 p, dtype = dtype)
            let ll = torch.zeros(int64 n, dtype = dtype)
            let pz = address<float> zc
            let pm = address<float> mc
            let pi = address<float> imputed
            let pl = address<float> ll
            let patterns = Collections.Generic.Dictionary<uint64, Pattern>()
            let y = Array.zeroCreate<float> p
            let log2Pi = log (2.0 * Math.PI)
            let mutable failed = false
            let mutable r = 0
            while not failed && r < n do
                let mutable key = 0UL
                for j in 0 .. p - 1 do
                    if NativePtr.get pm (r * p + j) > 0.5 then key <- key ||| (1UL <<< j)
                let found, known = patterns.TryGetValue key
                let pattern =
                    if found then Some known
                    else
                        let observed = [| for j in 0 .. p - 1 do if key &&& (1UL <<< j) = 0UL then j |]
                        let missing = [| for j in 0 .. p - 1 do if key &&& (1UL <<< j) <> 0UL then j |]
                        let made = patternOf cov p observed missing
                        made |> Option.iter (fun q -> patterns[key] <- q)
                        made
                match pattern with
                | None -> failed <- true
                | Some q ->
                    q.Rows <- q.Rows + 1
                    let o, m = q.Observed.Length, q.Missing.Length
                    // y = L⁻¹ (z_O − μ_O); the missing entries are μ_M + Vᵀ y, the log-likelihood −(o log 2π + log det Σ_OO + yᵀy) / 2.
                    let mutable squares = 0.0
                    for i in 0 .. o - 1 do
                        let mutable v = NativePtr.get pz (r * p + q.Observed[i]) - mus[q.Observed[i]]
                        for k in 0 .. i - 1 do v <- v - q.Factor[i * o + k] * y[k]
                        let yi = v / q.Factor[i * o + i]
                        y[i] <- yi
                        squares <- squares + yi * yi
                        NativePtr.set pi (r * p + q.Observed[i]) (NativePtr.get pz (r * p + q.Observed[i]))
                    for c in 0 .. m - 1 do
                        let mutable v = mus[q.Missing[c]]
                        for k in 0 .. o - 1 do v <- v + q.V[k * m + c] * y[k]
                        NativePtr.set pi (r * p + q.Missing[c]) v
                    if logLik && o > 0 then NativePtr.set pl r (-0.5 * (float o * log2Pi + q.LogDet + squares))
                r <- r + 1
            if failed then
                imputed.Dispose()
                ll.Dispose()
                None
            else
                let sum = Array.zeroCreate<float> (p * p)
                if covariance then
                    for q in patterns.Values do
                        let m = q.Missing.Length
                        for a in 0 .. m - 1 do
                            for b in 0 .. m - 1 do
                                sum[q.Missing[a] * p + q.Missing[b]] <- sum[q.Missing[a] * p + q.Missing[b]] + float q.Rows * q.C[a * m + b]
                Some (imputed, torch.tensor(sum, dtype = dtype).reshape(int64 p, int64 p), ll)

/// Batched E-step (eq. 6, 18-19): each row's missing entries replaced by their conditional mean under
/// N(μ, Σ), and the sum of the rows' conditional covariances.
/// <param name="mu">(p) mean.</param>
/// <param name="sigma">(p, p) symmetric positive-definite covariance.</param>
/// <param name="z">(B, p) rows; entries where <paramref name="mask"/> is 1 are ignored (may be NaN).</param>
/// <param name="mask">(B, p) 1.0 missing, 0.0 observed. Fully observed rows come back unchanged; fully
/// missing rows come back as μ.</param>
/// <remarks>No per-row loop: the smaller of each row's observed and missing blocks is factorised and inverted in
/// batched calls (appendix B of the paper for the precision form), and rows of the covariance form enter the
/// covariance sum through nΣ − Σ (Σ_i Σ_oo⁻¹) Σ, so none of them projects all p columns.</remarks>
let conditional (mu: Tensor) (sigma: Tensor) (z: Tensor) (mask: Tensor) : Conditional =
    use scope = torch.NewDisposeScope()
    match byPattern mu sigma z mask true true with
    | Some (imputed, covSum, logLik) ->
        { Imputed = imputed.MoveToOuterDisposeScope(); CovarianceSum = covSum.MoveToOuterDisposeScope(); LogLikelihood = logLik.MoveToOuterDisposeScope() }
    | None ->
        let zz = torch.where(mask.gt(sc (0.5)), torch.zeros_like(z), z)
        let l = cholesky sigma
        let imputed, _, covSum, logDetC = conditionalCore mu sigma l zz mask false true true
        // p(x_o) = p(x) / p(x_m | x_o) for any completion; at x_m = ẑ_m the denominator is N(ẑ_m; ẑ_m, C), whose log is
        // −(m log 2π + log det C) / 2, so the observed-data likelihood comes from one full-Σ density per row.
        let m = mask.sum(dim = 1L)
        let logLik = plus (logDensityFactor mu l imputed) (plus (m |> scaleBy (Math.Log(2.0 * Math.PI))) logDetC |> scaleBy 0.5)
        { Imputed = imputed.MoveToOuterDisposeScope()
          CovarianceSum = covSum.MoveToOuterDisposeScope()
          LogLikelihood = logLik.MoveToOuterDisposeScope() }

/// The conditional mean only: (B, p) rows with missing entries imputed, as <see cref="conditional"/> gives them,
/// without the covariance sum and the likelihood.
let conditionalMean (mu: Tensor) (sigma: Tensor) (z: Tensor) (mask: Tensor) : Tensor =
    use scope = torch.NewDisposeScope()
    match byPattern mu sigma z mask false false with
    | Some (imputed, _, _) -> imputed.MoveToOuterDisposeScope()
    | None ->
        let zz = torch.where(mask.gt(sc (0.5)), torch.zeros_like(z), z)
        let imputed, _, _, _ = conditionalCore mu sigma (cholesky sigma) zz mask false false false
        imputed.MoveToOuterDisposeScope()

/// What online EM needs of a batch's E-step, as <see cref="conditional"/> gives it: (B, p) rows with missing entries
/// imputed and the (p, p) sum of their conditional covariances, without the likelihood.
let conditionalStatistics (mu: Tensor) (sigma: Tensor) (z: Tensor) (mask: Tensor) : Tensor * Tensor =
    use scope = torch.NewDisposeScope()
    match byPattern mu sigma z mask true false with
    | Some (imputed, covSum, _) -> imputed.MoveToOuterDisposeScope(), covSum.MoveToOuterDisposeScope()
    | None ->
        let zz = torch.where(mask.gt(sc (0.5)), torch.zeros_like(z), z)
        let imputed, _, covSum, _ = conditionalCore mu sigma (cholesky sigma) zz mask false true false
        imputed.MoveToOuterDisposeScope(), covSum.MoveToOuterDisposeScope()

/// Per-row conditional covariances (B, p, p): C of each row in its (missing, missing) block, zero elsewhere.
/// Memory grows as B p²; used for multiple imputation and checks, not in the training loop.
let conditionalCovariances (mu: Tensor) (sigma: Tensor) (mask: Tensor) : Tensor =
    use scope = torch.NewDisposeScope()
    let z = mu.unsqueeze(0).expand(mask.shape[0], mu.shape[0]).contiguous()
    let _, rows, _, _ = conditionalCore mu sigma (cholesky sigma) z mask true false false
    rows.Value.MoveToOuterDisposeScope()

/// Draws from each row's conditional distribution N(ẑ_m, C): observed entries kept, (B, p).
let sampleConditional (gen: torch.Generator) (mu: Tensor) (sigma: Tensor) (z: Tensor) (mask: Tensor) : Tensor =
    use scope = torch.NewDisposeScope()
    let mean = conditionalMean mu sigma z mask
    let covs = conditionalCovariances mu sigma mask
    let b, p = mask.shape[0], mask.shape[1]
    // Padding the observed block with identity keeps each factor well defined; the draw is masked after.
    let padded = plus covs (torch.diag_embed(oneMinus mask))
    let l = torch.linalg.cholesky(plus padded (torch.eye(p, dtype = dtype) |> scaleBy 1e-12))
    let e = torch.randn([| b; p |], dtype = dtype, generator = gen)
    let draw = plus mean (l.bmm(e.unsqueeze(2)).squeeze(2) * mask)
    draw.MoveToOuterDisposeScope()

/// log N(x_o; μ_o, Σ_oo) for each row's observed entries, (B): the observed-data log-likelihood EM climbs.
/// A fully missing row contributes 0.
let marginalLogDensity (mu: Tensor) (sigma: Tensor) (x: Tensor) (mask: Tensor) : Tensor =
    use scope = torch.NewDisposeScope()
    let observed = oneMinus mask
    let b, p = x.shape[0], x.shape[1]
    let idx, k = packIndices observed
    let l = torch.linalg.cholesky((withIdentity sigma k).reshape(-1L).index_select(0L, blockPositions idx (p + k)).reshape(b, k, k))
    let xx = torch.where(mask.gt(sc (0.5)), torch.zeros_like(x), x)
    let d = torch.cat([| xx - mu; torch.zeros(b, k, dtype = dtype) |], 1L).gather(1L, idx)
    let y = torch.linalg.solve_triangular(l, d.unsqueeze(2), upper = false).squeeze(2)
    let maha = (y * y).sum(dim = 1L)
    let logDet = l.diagonal(dim1 = -2L, dim2 = -1L).log().sum(dim = 1L) |> scaleBy 2.0
    let count = observed.sum(dim = 1L)
    (plus (plus maha logDet) (count |> scaleBy (Math.Log(2.0 * Math.PI))) |> scaleBy -0.5).MoveToOuterDisposeScope()
