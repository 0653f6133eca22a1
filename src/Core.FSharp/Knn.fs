/// k-nearest-neighbour imputation from a pool of donor rows: the strong baseline on small tables, and a starting
/// imputation for EMFlow where it beats Gaussian EM on held-out entries.
module EMFlow.Knn

#nowarn "9" // NativePtr in the search loop

open System
open System.Numerics
open System.Runtime.CompilerServices
open System.Runtime.InteropServices
open System.Threading
open Microsoft.FSharp.NativeInterop
open TorchSharp
open EMFlow.Tensors

/// The donor pool: rows on the [0, 1] scale with what each observes.
type Donors =
    { /// (n, p) donor rows, missing entries 0.
      X: torch.Tensor
      /// (n, p) 1.0 where the donor observes the entry.
      Observed: torch.Tensor
      /// (p) mean of each feature over its observed donor values: the fallback when no donor observes a feature.
      ColumnMean: torch.Tensor }

// Bounds each chunk of rows: about 2M donor comparisons (so the token is checked well under a second apart) and at
// most 2M entries of top-k state (rows · p · k keys and indices, 24 MB).
let private distanceBudget = 1L <<< 21

/// The donor pool of x (n, p) under mask (n, p), 1.0 = missing. Columns that no donor observes fall back to 0.
let donors (x: torch.Tensor) (mask: torch.Tensor) : Donors =
    let observed = oneMinus mask
    let xo = x.nan_to_num() * observed
    { X = xo
      Observed = observed
      ColumnMean = xo.sum(dim = 0L) / observed.sum(dim = 0L).clamp_min(sc 1.0) }

/// The pool with its tensors moved out of every dispose scope, so that it lives as long as the model that keeps it;
/// <see cref="dispose"/> releases it.
let keep (d: Donors) : Donors =
    { X = d.X.DetachFromDisposeScope()
      Observed = d.Observed.DetachFromDisposeScope()
      ColumnMean = d.ColumnMean.DetachFromDisposeScope() }

/// Releases the pool's tensors.
let dispose (d: Donors) =
    d.X.Dispose()
    d.Observed.Dispose()
    d.ColumnMean.Dispose()

// Donors per group: four float32 vectors, so that each row keeps four independent chains of d2 and c sums in flight
// (one chain would wait on the latency of every fused multiply-add).
let private lanes = 4 * Vector<float32>.Count

/// An (n, p) row-major array in float32, re-laid as groups of `lanes` donors, each group feature-major (group,
/// feature, lane): a row's pass over a group then reads one contiguous run of vectors per feature it observes.
/// Padding donors are zero, so unobserved everywhere, and share no feature with any row.
let private grouped (values: float[]) (n: int) (p: int) : float32[] =
    let groups = (n + lanes - 1) / lanes
    let out = Array.zeroCreate<float32> (groups * p * lanes)
    for d in 0 .. n - 1 do
        let g, l = d / lanes, d % lanes
        for f in 0 .. p - 1 do
            out[(g * p + f) * lanes + l] <- float32 values[d * p + f]
    out

/// What the search reads of a pool: its (n, p) values and observed flags as float64 arrays, the same grouped in
/// float32, and the largest |value|.
type private Layout = { X: float[]; O: float[]; X32: float32[]; O32: float32[]; Largest: float }

// One layout per pool, made on its first search and kept as long as the pool's X tensor: a model imputing new rows
// a few at a time would otherwise copy and regroup all n donors on every call (about 24 ms a call at 20000 × 16).
let private layouts = ConditionalWeakTable<torch.Tensor, Layout>()

/// A float64 tensor's values in row-major order, as a new array.
let private valuesOf (t: torch.Tensor) : float[] =
    use scope = torch.NewDisposeScope()
    t.contiguous().data<float>().ToArray()

let private layoutOf (pool: Donors) : Layout =
    layouts.GetValue(pool.X, fun _ ->
        let n, p = int pool.X.shape[0], int pool.X.shape[1]
        let x, o = valuesOf pool.X, valuesOf pool.Observed
        { X = x; O = o; X32 = grouped x n p; O32 = grouped o n p; Largest = x |> Array.fold (fun m v -> max m (abs v)) 0.0 })

/// The rows of one chunk as the search reads them: for row r, its observed features and values at [r·p, r·p +
/// Observed[r]) of ObservedFeature and ObservedValue, the missing features some donor observes at [r·p, r·p +
/// Missing[r]) of MissingFeature; and the best donors found so far for (row r, feature j), slot r·p + j: Count of
/// them, keys d2 / c ascending (ties to the earlier donor) and donor indices at [slot·KMax, slot·KMax + Count).
type private Search =
    { ObservedFeature: int[]
      ObservedValue: float[]
      Observed: int[]
      MissingFeature: int[]
      Missing: int[]
      Keys: float[]
      Donor: int[]
      Count: int[]
      KMax: int }

/// Puts donor d with key into slot's sorted list of at most kk, dropping the last when full; the caller has checked
/// that it beats the last. Strict comparison keeps equal keys in donor order.
let private insert (s: Search) (slot: int) (kk: int) (key: float) (d: int) =
    let b = slot * s.KMax
    let count = s.Count[slot]
    let mutable pos = if count < kk then count else kk - 1
    while pos > 0 && s.Keys[b + pos - 1] > key do
        s.Keys[b + pos] <- s.Keys[b + pos - 1]
        s.Donor[b + pos] <- s.Donor[b + pos - 1]
        pos <- pos - 1
    s.Keys[b + pos] <- key
    s.Donor[b + pos] <- d
    if count < kk then s.Count[slot] <- count + 1

/// Finds, for every listed row and each feature it misses, the kk[j] donors observing j with the smallest d2 / c
/// among those sharing a feature with it. x32 and o32 are the grouped float32 donor values and observed flags, x and
/// o the (n, p) float64 ones, largest the largest |x|.
[<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
let private search (x32: float32[]) (o32: float32[]) (x: float[]) (o: float[]) (largest: float) (n: int) (p: int)
                   (kk: int[]) (rows: int[]) (s: Search) =
    // float32 only screens: it runs twice the lanes of float64 per instruction, and a donor it cannot rule out is
    // measured again in float64 and ranked on that alone, so the neighbours are those of an all-float64 search.
    // Compiled fully optimized at once (the attribute): it is called once per chunk, too few times for tiered
    // compilation to promote it before a call of a few thousand rows is over, and its tier-0 and on-stack-replacement
    // code ran at about half speed.
    let w = Vector<float32>.Count
    let feature, value, observed = s.ObservedFeature, s.ObservedValue, s.Observed
    let value32 = Array.map float32 value
    // Per row: the largest k-th key over its missing features (infinite until every list is full). A donor is ruled
    // out when its float32 d2 exceeds scale · c + slack. With o observed features, |values| ≤ v and u = 2^-24, the
    // float32 sum is within 7·o·u·v² + o·u·d2 of the exact one, so scale = bound · (1 + 1e-5) and
    // slack = 16·o·u·v² never rule out a donor whose float64 key beats the bound; they only let through a few
    // more, which the float64 test then drops. o · 1e-37 more covers float32 underflow of tiny values and of a tiny
    // scale. Beyond v = 1e17 float32 could overflow: nothing is ruled out there.
    let bound = Array.create rows.Length Double.PositiveInfinity
    let scale = Array.create rows.Length Single.PositiveInfinity
    let slack =
        rows |> Array.map (fun r ->
            let mutable v = largest
            for t in r * p .. r * p + observed[r] - 1 do v <- max v (largest + abs value[t])
            if v < 1e17 then float32 (float observed[r] * (16.0 / 16777216.0 * v * v + 1e-37)) else Single.PositiveInfinity)
    let spill = Array.zeroCreate<float32> (2 * lanes)
    let groups = (n + lanes - 1) / lanes
    // Raw pointers: the offsets come from the layout, and bounds checks on the eight loads per feature cost more
    // than the arithmetic.
    use px = fixed x32
    use po = fixed o32
    use pf = fixed feature
    use pv = fixed value32
    for g in 0 .. groups - 1 do
        let gx = NativePtr.add px (g * p * lanes)
        let go = NativePtr.add po (g * p * lanes)
        for ai in 0 .. rows.Length - 1 do
            let r = rows[ai]
            let mutable s0 = Vector<float32>.Zero
            let mutable s1 = Vector<float32>.Zero
            let mutable s2 = Vector<float32>.Zero
            let mutable s3 = Vector<float32>.Zero
            let mutable c0 = Vector<float32>.Zero
            let mutable c1 = Vector<float32>.Zero
            let mutable c2 = Vector<float32>.Zero
            let mutable c3 = Vector<float32>.Zero
            let mutable t = r * p
            let stop = t + observed[r]
            while t < stop do
                let a = Vector<float32>(NativePtr.get pv t)
                let offset = NativePtr.get pf t * lanes
                let xp = NativePtr.add gx offset
                let op = NativePtr.add go offset
                let o0 = Vector.Load(op)
                let e0 = (Vector.Load(xp) - a) * o0
                s0 <- Vector.FusedMultiplyAdd(e0, e0, s0)
                c0 <- c0 + o0
                let o1 = Vector.Load(NativePtr.add op w)
                let e1 = (Vector.Load(NativePtr.add xp w) - a) * o1
                s1 <- Vector.FusedMultiplyAdd(e1, e1, s1)
                c1 <- c1 + o1
                let o2 = Vector.Load(NativePtr.add op (2 * w))
                let e2 = (Vector.Load(NativePtr.add xp (2 * w)) - a) * o2
                s2 <- Vector.FusedMultiplyAdd(e2, e2, s2)
                c2 <- c2 + o2
                let o3 = Vector.Load(NativePtr.add op (3 * w))
                let e3 = (Vector.Load(NativePtr.add xp (3 * w)) - a) * o3
                s3 <- Vector.FusedMultiplyAdd(e3, e3, s3)
                c3 <- c3 + o3
                t <- t + 1
            let b = Vector<float32>(scale[ai])
            let e = Vector<float32>(slack[ai])
            let l0 = b * c0 + e
            let l1 = b * c1 + e
            let l2 = b * c2 + e
            let l3 = b * c3 + e
            // Written as "not all above" so that a NaN limit (an infinite scale times c = 0) rules nothing out.
            if not (Vector.GreaterThanAll(s0, l0) && Vector.GreaterThanAll(s1, l1)
                    && Vector.GreaterThanAll(s2, l2) && Vector.GreaterThanAll(s3, l3)) then
                s0.CopyTo(spill, 0)
                s1.CopyTo(spill, w)
                s2.CopyTo(spill, 2 * w)
                s3.CopyTo(spill, 3 * w)
                l0.CopyTo(spill, lanes)
                l1.CopyTo(spill, lanes + w)
                l2.CopyTo(spill, lanes + 2 * w)
                l3.CopyTo(spill, lanes + 3 * w)
                for i in 0 .. lanes - 1 do
                    let d = g * lanes + i
                    if d < n && not (spill[i] > spill[lanes + i]) then
                        let mutable d2 = 0.0
                        let mutable c = 0.0
                        for t in r * p .. stop - 1 do
                            let at = d * p + feature[t]
                            let e = (x[at] - value[t]) * o[at]
                            d2 <- d2 + e * e
                            c <- c + o[at]
                        if c > 0.5 then
                            // Ranking by d2 / c picks the same donors as sqrt(p · d2 / c), which is monotone in it.
                            let key = d2 / c
                            for m in r * p .. r * p + s.Missing[r] - 1 do
                                let j = s.MissingFeature[m]
                                let slot = r * p + j
                                if o[d * p + j] > 0.5
                                   && (s.Count[slot] < kk[j] || key < s.Keys[slot * s.KMax + kk[j] - 1]) then
                                    insert s slot kk[j] key d
                let mutable widest = 0.0
                for m in r * p .. r * p + s.Missing[r] - 1 do
                    let j = s.MissingFeature[m]
                    let slot = r * p + j
                    let kth = if s.Count[slot] < kk[j] then Double.PositiveInfinity else s.Keys[slot * s.KMax + kk[j] - 1]
                    widest <- max widest kth
                if widest < bound[ai] then
                    bound[ai] <- widest
                    scale[ai] <- float32 (widest * (1.0 + 1e-5))

/// Fills each missing entry of x (m, p) under mask (m, p) with the mean of that feature over the k donors nearest
/// to the row among those that observe the feature. Distance: the Euclidean distance over the features both rows
/// observe, scaled by the share they observe, sqrt(p / c · Σ (a_j − b_j)²) with c the count of common features
/// (scikit-learn's nan-Euclidean), so rows sharing few features do not look near. Rows with no common feature are
/// never neighbours; fewer than k usable donors give the mean of those there are, none the feature's donor mean.
/// A row imputed from a pool that contains it is never its own donor for a feature it misses, since it does not
/// observe that feature. Observed entries are returned bit-for-bit. Returns a new (m, p) tensor.
/// <exception cref="System.ArgumentOutOfRangeException">k below 1.</exception>
/// <exception cref="System.ArgumentException">x and the pool differ in column count.</exception>
/// <exception cref="System.OperationCanceledException">The token is cancelled; it is checked before each chunk of
/// rows (about 2M donor comparisons, well under a second).</exception>
let imputeCancellable (k: int) (pool: Donors) (ct: CancellationToken) (x: torch.Tensor) (mask: torch.Tensor) : torch.Tensor =
    // Cost per row with o observed features (about 0.8 p at 20% missing) against n donors: o · n float32 lanes of
    // subtract, multiply, fused multiply-add and add (d2 and c in one pass, 8 lanes per AVX2 instruction, only over
    // the row's own observed features), one compare per donor against the loosest k-th key of its missing features,
    // and a float64 re-measure (o terms) of the few donors that compare can not rule out, about k · ln(n / k) per
    // missing feature. Nothing (rows, n) is ever stored: each group of donors (p · lanes · 8 bytes, 4 KB at p = 16)
    // is compared with every row of the chunk while it sits in L1, so the pool is read from memory once per chunk,
    // not once per row. The matrix-product form this replaced spent 4 · 2p flops per pair in four (rows, p) × (p, n)
    // products and then about 15 float64 passes over the (rows, n) block (expansion, clamp, scale, divide, sqrt,
    // where, a gather and a where per missing feature, top-k), the passes costing several times the products.
    if k < 1 then raise (ArgumentOutOfRangeException("k", k, sprintf "k must be at least 1; got %d." k))
    let m, p, n = x.shape[0], x.shape[1], pool.X.shape[0]
    if pool.X.shape[1] <> p then
        raise (ArgumentException(sprintf "x has %d columns but the donor pool has %d." p pool.X.shape[1], "x"))
    let result = x.clone()
    let donorCounts = pool.Observed.sum(dim = 0L).to_type(torch.int64).data<int64>().ToArray()
    let missingPerColumn = mask.sum(dim = 0L).data<float>().ToArray()
    let ip, inn = int p, int n
    let kk = donorCounts |> Array.map (fun c -> int (min (int64 k) c))
    let kMax = max 1 (Array.max (Array.append [| 0 |] kk))
    let layout = layoutOf pool
    let donorX = layout.X
    let chunk = max 1L (distanceBudget / max 1L (max n (p * int64 kMax)))
    let fillChunk (start: int64) (len: int64) =
        use scope = torch.NewDisposeScope()
        let mq = mask.narrow(0L, start, len)
        let missing = valuesOf mq
        let q = valuesOf (x.narrow(0L, start, len).nan_to_num() * oneMinus mq)
        let rowsN = int len
        let s =
            { ObservedFeature = Array.zeroCreate (rowsN * ip)
              ObservedValue = Array.zeroCreate (rowsN * ip)
              Observed = Array.zeroCreate rowsN
              MissingFeature = Array.zeroCreate (rowsN * ip)
              Missing = Array.zeroCreate rowsN
              Keys = Array.zeroCreate (rowsN * ip * kMax)
              Donor = Array.zeroCreate (rowsN * ip * kMax)
              Count = Array.zeroCreate (rowsN * ip)
              KMax = kMax }
        let rows = ResizeArray<int>()
        for r in 0 .. rowsN - 1 do
            for f in 0 .. ip - 1 do
                if missing[r * ip + f] > 0.5 then
                    if donorCounts[f] > 0L then
                        s.MissingFeature[r * ip + s.Missing[r]] <- f
                        s.Missing[r] <- s.Missing[r] + 1
                else
                    s.ObservedFeature[r * ip + s.Observed[r]] <- f
                    s.ObservedValue[r * ip + s.Observed[r]] <- q[r * ip + f]
                    s.Observed[r] <- s.Observed[r] + 1
            // A row observing nothing has no neighbour; one missing nothing searchable needs no search.
            if s.Observed[r] > 0 && s.Missing[r] > 0 then rows.Add r
        search layout.X32 layout.O32 donorX layout.O layout.Largest inn ip kk (rows.ToArray()) s
        let filled = result.narrow(0L, start, len)
        for j in 0 .. ip - 1 do
            if missingPerColumn[j] > 0.0 && donorCounts[j] > 0L then
                let rowsJ = [| for r in 0 .. rowsN - 1 do if missing[r * ip + j] > 0.5 then int64 r |]
                let r = rowsJ.Length
                if r > 0 then
                    use featureScope = torch.NewDisposeScope()
                    // The same (rows, kk) sum as the top-k form took, so each mean is bit-for-bit the one it gave.
                    let kkj = kk[j]
                    let v = Array.zeroCreate<float> (r * kkj)
                    let u = Array.zeroCreate<float> (r * kkj)
                    for i in 0 .. r - 1 do
                        let slot = int rowsJ[i] * ip + j
                        for t in 0 .. s.Count[slot] - 1 do
                            v[i * kkj + t] <- donorX[s.Donor[slot * kMax + t] * ip + j]
                            u[i * kkj + t] <- 1.0
                    let vt = torch.tensor(v, dtype = dtype).reshape(int64 r, int64 kkj)
                    let usable = torch.tensor(u, dtype = dtype).reshape(int64 r, int64 kkj)
                    let count = usable.sum(dim = 1L)
                    let mean = (vt * usable).sum(dim = 1L) / count.clamp_min(sc 1.0)
                    let value = torch.where(count.gt(sc 0.5), mean, pool.ColumnMean[int64 j].expand(int64 r))
                    filled.select(1L, int64 j).index_copy_(0L, torch.tensor(rowsJ), value) |> ignore
            elif missingPerColumn[j] > 0.0 then
                let column = filled.select(1L, int64 j)
                column.copy_(torch.where(mq.select(1L, int64 j).gt(sc 0.5), pool.ColumnMean[int64 j].expand(len), column)) |> ignore
    let mutable start = 0L
    let mutable trimmedAt = residentBytes ()
    while start < m do
        if ct.IsCancellationRequested then
            result.Dispose()
            ct.ThrowIfCancellationRequested()
        let len = min chunk (m - start)
        fillChunk start len
        // The search keeps nothing of size (rows, n), but a large table still frees a chunk's arrays and tensors
        // many times; trimming once the resident set has grown by 256 MB keeps glibc from holding on to them
        // without paying for page faults on every chunk.
        trimmedAt <- releaseFreedMemoryAbove (256L <<< 20) trimmedAt
        start <- start + len
    result

/// <see cref="imputeCancellable"/> without a token.
let impute (k: int) (pool: Donors) (x: torch.Tensor) (mask: torch.Tensor) : torch.Tensor =
    imputeCancellable k pool CancellationToken.None x mask
