/// Choosing between iterations without touching test data: a small share of the training table's observed
/// entries is hidden during training and each iteration's imputations are scored on them.
module EMFlow.Selection

open System
open TorchSharp
open EMFlow.Tensors

/// Hides about `fraction` of the observed entries of (n, p) `mask`, chosen with `seed`, never the last
/// observed entry of a column (so every column stays learnable).
/// Returns (training mask (n, p) with the hidden entries marked missing, hidden entries (n, p) as 1.0).
/// Raises ArgumentOutOfRangeException unless 0 ≤ fraction &lt; 1.
let holdOut (seed: int64) (fraction: float) (mask: Tensor) : Tensor * Tensor =
    if not (fraction >= 0.0 && fraction < 1.0) then
        raise (ArgumentOutOfRangeException("fraction", fraction, sprintf "must be in [0, 1); got %g" fraction))
    use gen = generator seed
    let observed = 1.0 - mask
    let draw = torch.rand(mask.shape, dtype = dtype, generator = gen).lt(sc fraction).to_type(dtype) * observed
    // Give back one hidden entry per column that would otherwise lose every observed value.
    let left = (observed - draw).sum(dim = 0L)
    let emptied = left.eq(sc 0.0).to_type(dtype)
    let firstHidden = (draw * (torch.arange(mask.shape[0], 0L, -1L, dtype = dtype).unsqueeze(1))).argmax(dim = 0L)
    let restore = torch.zeros_like(draw).scatter(0L, firstHidden.unsqueeze(0), emptied.unsqueeze(0))
    let hidden = draw - restore * draw
    mask + hidden, hidden

/// RMSE over the hidden entries (1.0 in `hidden`), or NaN when nothing is hidden.
let score (truth: Tensor) (imputed: Tensor) (hidden: Tensor) : float =
    let count = scalar (hidden.sum())
    if count = 0.0 then nan
    else Math.Sqrt(scalar ((((imputed - truth) * hidden).pow(sc 2.0)).sum()) / count)
