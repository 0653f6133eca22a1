/// The multivariate Gaussian pieces of the E-step: conditional means and covariances for a batch of rows
/// that each have their own missing pattern, log-densities with a full covariance, and a Cholesky that
/// tolerates a nearly singular covariance.
module EMFlow.Gaussian

open System
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
            let a = if jitters[k] = 0.0 then sigma else sigma + torch.eye(p, dtype = sigma.dtype) * (jitters[k] * scale)
            let struct (l, info) = torch.linalg.cholesky_ex(a)
            if info.item<int>() = 0 then l else attempt (k + 1)
    attempt 0

/// Precision matrix Σ⁻¹ (p, p) through the Cholesky factor, symmetrised against round-off.
let precision (sigma: Tensor) : Tensor =
    let l = cholesky sigma
    let inv = torch.cholesky_inverse(l)
    (inv + inv.T) * 0.5

/// log N(z_i; μ, Σ) for each row, (B). Differentiable in z (the flow is trained through it); μ and Σ enter
/// as given.
let logDensity (mu: Tensor) (sigma: Tensor) (z: Tensor) : Tensor =
    let p = float z.shape[1]
    let l = cholesky sigma
    let d = (z - mu).T
    let y = torch.linalg.solve_triangular(l, d, upper = false)
    let maha = (y * y).sum(dim = 0L)
    let logDet = l.diagonal().log().sum() * 2.0
    (maha + logDet + p * Math.Log(2.0 * Math.PI)) * -0.5

// Row-chunks bound the (chunk, K, p) temporaries of the observed-block form at about 2^24 doubles.
let private chunkRows (k: int64) (p: int64) (b: int64) =
    max 1L (min b ((1L <<< 24) / max 1L (k * p)))

/// For each row, the indices of its `selected` features first (1.0 in `selected`), padded to width K with
/// other indices, and a (B, K) validity mask telling which positions are real.
let private packIndices (selected: Tensor) =
    let counts = selected.sum(dim = 1L)
    let k = max 1L (int64 (scalar (counts.max())))
    let struct (_, order) = torch.sort(selected, dim = 1L, descending = true, stable = true)
    let idx = order.narrow(1L, 0L, k)
    let pos = torch.arange(k, dtype = dtype).unsqueeze(0)
    let valid = pos.lt(counts.unsqueeze(1)).to_type(dtype)
    idx, valid, k

/// Gathers a (B, K, K) block of a symmetric (p, p) matrix at each row's indices, with identity on padding,
/// so one batched factorisation serves rows of different pattern sizes.
let private gatherBlock (m: Tensor) (idx: Tensor) (valid: Tensor) =
    let b, k = idx.shape[0], idx.shape[1]
    let p = m.shape[0]
    let rows = m.index_select(0L, idx.flatten()).reshape(b, k, p)
    let block = rows.gather(2L, idx.unsqueeze(1).expand(b, k, k))
    let vv = valid.unsqueeze(2) * valid.unsqueeze(1)
    block * vv + torch.diag_embed(1.0 - valid)

/// Precision form for rows whose missing block is the smaller: C = (Λ_mm)⁻¹, ẑ_m = μ_m − C Λ_mo (z_o − μ_o).
/// Returns the imputed rows, the per-row covariance placed in (p, p) if asked for, and the covariance sum.
let private missingBlockForm (mu: Tensor) (lambda: Tensor) (z: Tensor) (mask: Tensor) (perRow: bool) =
    let p = z.shape[1]
    let idx, valid, _ = packIndices mask
    let lmm = gatherBlock lambda idx valid
    let l = torch.linalg.cholesky(lmm)
    let d = (z - mu) * (1.0 - mask)
    let r = d.matmul(lambda).gather(1L, idx) * valid
    let x = torch.cholesky_solve(r.unsqueeze(2), l).squeeze(2)
    let muIdx = mu.index_select(0L, idx.flatten()).reshape(idx.shape)
    let start = z * (1.0 - mask) + mu * mask
    let values = torch.where(valid.gt(sc (0.5)), muIdx - x, start.gather(1L, idx))
    let imputed = start.scatter(1L, idx, values)
    let c = torch.cholesky_inverse(l) * (valid.unsqueeze(2) * valid.unsqueeze(1))
    let b, k = idx.shape[0], idx.shape[1]
    let flat = (idx.unsqueeze(2) * p + idx.unsqueeze(1)).flatten()
    let covSum = torch.zeros(p * p, dtype = dtype).index_add(0L, flat, c.flatten(), sc 1.0).reshape(p, p)
    let rows =
        if perRow then
            let offsets = (torch.arange(b, dtype = torch.int64) * (p * p)).reshape(b, 1L, 1L)
            let flatB = (offsets + idx.unsqueeze(2) * p + idx.unsqueeze(1)).flatten()
            Some (torch.zeros(b * p * p, dtype = dtype).index_add(0L, flatB, c.flatten(), sc 1.0).reshape(b, p, p))
        else None
    // log det C = −log det Λ_mm; padding sits on the diagonal as 1 and adds nothing.
    let logDetC = l.diagonal(dim1 = -2L, dim2 = -1L).log().sum(dim = 1L) * -2.0
    imputed, rows, covSum, logDetC

/// Observed-block form for rows whose observed block is the smaller:
/// ẑ_m = μ_m + Σ_mo Σ_oo⁻¹ (z_o − μ_o), C = Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om. Fully missing rows land here
/// (empty observed block: ẑ = μ, C = Σ).
let private observedBlockForm (mu: Tensor) (sigma: Tensor) (z: Tensor) (mask: Tensor) (perRow: bool) =
    let p = z.shape[1]
    let observed = 1.0 - mask
    let idx, valid, k = packIndices observed
    let b = idx.shape[0]
    let soo = gatherBlock sigma idx valid
    let l = torch.linalg.cholesky(soo)
    let d = (z - mu).gather(1L, idx) * valid
    let w = torch.cholesky_solve(d.unsqueeze(2), l).squeeze(2)
    // Rows of Σ at the observed indices, zeroed on padding: (B, K, p) = Σ_o,: for each row.
    let a = sigma.index_select(0L, idx.flatten()).reshape(b, k, p) * valid.unsqueeze(2)
    let full = mu + w.unsqueeze(1).bmm(a).squeeze(1)
    let imputed = z * observed + full * mask
    let u = torch.linalg.solve_triangular(l, a, upper = false)
    let v = u * mask.unsqueeze(1)
    let maskOuter = mask.T.matmul(mask)
    let covSum = sigma * maskOuter - v.reshape(b * k, p).T.matmul(v.reshape(b * k, p))
    let rows =
        if perRow then
            let mm = mask.unsqueeze(2) * mask.unsqueeze(1)
            Some (sigma.unsqueeze(0) * mm - v.transpose(1L, 2L).bmm(v))
        else None
    // det Σ = det Σ_oo · det C (Schur complement), so log det C = log det Σ − log det Σ_oo.
    let logDetSigma = (cholesky sigma).diagonal().log().sum() * 2.0
    let logDetC = logDetSigma - l.diagonal(dim1 = -2L, dim2 = -1L).log().sum(dim = 1L) * 2.0
    imputed, rows, covSum, logDetC

/// Runs the cheaper form for each row: the precision form factorises and inverts a block of the size of the
/// row's missing set, about (4/3) m³ operations for m missing entries; the covariance form factorises the
/// observed block and, for the covariance sum, projects all p columns through it, about o p² + o² p for o
/// observed entries. Block size alone would send half-missing rows of wide tables to the dearer form. Rows are
/// grouped so each group needs a single batched factorisation padded to its largest block.
let private conditionalCore (mu: Tensor) (sigma: Tensor) (z: Tensor) (mask: Tensor) (perRow: bool) =
    let n, p = z.shape[0], z.shape[1]
    let missing = mask.sum(dim = 1L)
    let observed = missing.neg().add(sc (float p))
    let pf = float p
    let precisionCost = missing.pow(sc 3.0) * (4.0 / 3.0)
    let observedCost = observed * (pf * pf) + observed.pow(sc 2.0) * pf
    let useMissingBlock = precisionCost.le(observedCost)
    let imputed = z.clone()
    let covSum = torch.zeros(p, p, dtype = dtype)
    let rows = if perRow then Some (torch.zeros(n, p, p, dtype = dtype)) else None
    let logDetC = torch.zeros(n, dtype = dtype)
    let lambda = lazy (precision sigma)
    for group, form in [ useMissingBlock, true; useMissingBlock.logical_not(), false ] do
        let unsorted = group.nonzero().squeeze(1)
        let count = unsorted.shape[0]
        if count > 0L then
            // Rows sorted by block size, so that each chunk pads only to the largest block among rows of similar size.
            let blockSizes = (if form then missing else observed).index_select(0L, unsorted)
            let members = unsorted.index_select(0L, blockSizes.argsort())
            let gm = mask.index_select(0L, members)
            let k = max 1L (int64 (scalar ((if form then gm else 1.0 - gm).sum(dim = 1L).max())))
            let step = chunkRows k p count
            let mutable start = 0L
            while start < count do
                let len = min step (count - start)
                let part = members.narrow(0L, start, len)
                let zc = z.index_select(0L, part)
                let mc = mask.index_select(0L, part)
                let imp, r, cs, ld =
                    if form then missingBlockForm mu lambda.Value zc mc perRow
                    else observedBlockForm mu sigma zc mc perRow
                imputed.index_copy_(0L, part, imp) |> ignore
                logDetC.index_copy_(0L, part, ld) |> ignore
                covSum.add_(cs) |> ignore
                match rows, r with
                | Some all, Some rr -> all.index_copy_(0L, part, rr) |> ignore
                | _ -> ()
                start <- start + len
    imputed, rows, (covSum + covSum.T) * 0.5, logDetC

/// Batched E-step (eq. 6, 18-19): each row's missing entries replaced by their conditional mean under
/// N(μ, Σ), and the sum of the rows' conditional covariances.
/// <param name="mu">(p) mean.</param>
/// <param name="sigma">(p, p) symmetric positive-definite covariance.</param>
/// <param name="z">(B, p) rows; entries where <paramref name="mask"/> is 1 are ignored (may be NaN).</param>
/// <param name="mask">(B, p) 1.0 missing, 0.0 observed. Fully observed rows come back unchanged; fully
/// missing rows come back as μ.</param>
/// <remarks>No per-row inverse: every row is solved through one batched Cholesky factorisation of the smaller
/// of its observed and missing blocks (appendix B of the paper for the precision form).</remarks>
let conditional (mu: Tensor) (sigma: Tensor) (z: Tensor) (mask: Tensor) : Conditional =
    use scope = torch.NewDisposeScope()
    let zz = torch.where(mask.gt(sc (0.5)), torch.zeros_like(z), z)
    let imputed, _, covSum, logDetC = conditionalCore mu sigma zz mask false
    // p(x_o) = p(x) / p(x_m | x_o) for any completion; at x_m = ẑ_m the denominator is N(ẑ_m; ẑ_m, C), whose log is
    // −(m log 2π + log det C) / 2, so the observed-data likelihood comes from one full-Σ density per row.
    let m = mask.sum(dim = 1L)
    let logLik = logDensity mu sigma imputed + (m * Math.Log(2.0 * Math.PI) + logDetC) * 0.5
    { Imputed = imputed.MoveToOuterDisposeScope()
      CovarianceSum = covSum.MoveToOuterDisposeScope()
      LogLikelihood = logLik.MoveToOuterDisposeScope() }

/// The conditional mean only: (B, p) rows with missing entries imputed. See <see cref="conditional"/>.
let conditionalMean (mu: Tensor) (sigma: Tensor) (z: Tensor) (mask: Tensor) : Tensor =
    let c = conditional mu sigma z mask
    c.CovarianceSum.Dispose()
    c.LogLikelihood.Dispose()
    c.Imputed

/// Per-row conditional covariances (B, p, p): C of each row in its (missing, missing) block, zero elsewhere.
/// Memory grows as B p²; used for multiple imputation and checks, not in the training loop.
let conditionalCovariances (mu: Tensor) (sigma: Tensor) (mask: Tensor) : Tensor =
    use scope = torch.NewDisposeScope()
    let z = mu.unsqueeze(0).expand(mask.shape[0], mu.shape[0]).contiguous()
    let _, rows, _, _ = conditionalCore mu sigma z mask true
    rows.Value.MoveToOuterDisposeScope()

/// Draws from each row's conditional distribution N(ẑ_m, C): observed entries kept, (B, p).
let sampleConditional (gen: torch.Generator) (mu: Tensor) (sigma: Tensor) (z: Tensor) (mask: Tensor) : Tensor =
    use scope = torch.NewDisposeScope()
    let mean = conditionalMean mu sigma z mask
    let covs = conditionalCovariances mu sigma mask
    let b, p = mask.shape[0], mask.shape[1]
    // Padding the observed block with identity keeps each factor well defined; the draw is masked after.
    let padded = covs + torch.diag_embed(1.0 - mask)
    let l = torch.linalg.cholesky(padded + torch.eye(p, dtype = dtype) * 1e-12)
    let e = torch.randn([| b; p |], dtype = dtype, generator = gen)
    let draw = mean + l.bmm(e.unsqueeze(2)).squeeze(2) * mask
    draw.MoveToOuterDisposeScope()

/// log N(x_o; μ_o, Σ_oo) for each row's observed entries, (B): the observed-data log-likelihood EM climbs.
/// A fully missing row contributes 0.
let marginalLogDensity (mu: Tensor) (sigma: Tensor) (x: Tensor) (mask: Tensor) : Tensor =
    use scope = torch.NewDisposeScope()
    let observed = 1.0 - mask
    let idx, valid, _ = packIndices observed
    let soo = gatherBlock sigma idx valid
    let l = torch.linalg.cholesky(soo)
    let xx = torch.where(mask.gt(sc (0.5)), torch.zeros_like(x), x)
    let d = (xx - mu).gather(1L, idx) * valid
    let y = torch.linalg.solve_triangular(l, d.unsqueeze(2), upper = false).squeeze(2)
    let maha = (y * y).sum(dim = 1L)
    let logDet = l.diagonal(dim1 = -2L, dim2 = -1L).log().sum(dim = 1L) * 2.0
    let k = observed.sum(dim = 1L)
    ((maha + logDet + k * Math.Log(2.0 * Math.PI)) * -0.5).MoveToOuterDisposeScope()
