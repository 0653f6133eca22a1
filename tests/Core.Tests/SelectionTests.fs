module EMFlow.Tests.SelectionTests

open System
open Expecto
open TorchSharp
open EMFlow
open EMFlow.Tensors

[<Tests>]
let tests =
    testList "Selection" [
        test "hold-out hides only observed entries, about the requested share, and repeats with the seed" {
            let mask = Missingness.mcar 1L 0.2 (2000, 5)
            let trainMask, hidden = Selection.holdOut 2L 0.1 mask
            Expect.equal (scalar ((hidden * mask).sum())) 0.0 "never a missing entry"
            Expect.isLessThan (scalar ((trainMask - (mask + hidden)).abs().max())) 1e-15 "training mask adds the hidden entries"
            let share = scalar (hidden.sum()) / scalar ((1.0 - mask).sum())
            Expect.floatClose { absolute = 0.001; relative = 0.0 } share 0.1 "10% of observed entries"
            let _, again = Selection.holdOut 2L 0.1 mask
            Expect.isTrue (hidden.eq(again).all().item<bool>()) "same seed"
        }
        test "hold-out never empties a column" {
            let mask = torch.ones(50L, 3L, dtype = dtype)
            mask[7, 1] <- torch.tensor(0.0, dtype = dtype)
            let trainMask, _ = Selection.holdOut 3L 0.99 mask
            Expect.equal (scalar ((1.0 - trainMask).sum(dim = 0L)[1])) 1.0 "the only observed entry stays"
        }
        test "a hold-out drawn with the mask's own seed still hides the requested share" {
            // Thresholding fresh uniforms would hide nothing here: the mask already took every uniform below 0.2.
            let mask = Missingness.mcar 5L 0.2 (1000, 4)
            let _, hidden = Selection.holdOut 5L 0.05 mask
            let expected = Math.Round(0.05 * scalar ((1.0 - mask).sum()))
            Expect.equal (scalar (hidden.sum())) expected "round(fraction x observed) entries hidden"
        }
        test "a hold-out shaped like the missingness hides where the data are missing" {
            // Columns 0-6 always observed, 7-9 half missing: a MAR-like pattern.
            let mask = torch.cat([| torch.zeros(3000L, 7L, dtype = dtype); Missingness.mcar 9L 0.5 (3000, 3) |], 1L)
            let trainMask, hidden = Selection.holdOutLikeMissingness 4L 0.05 mask
            Expect.equal (scalar ((hidden * mask).sum())) 0.0 "never a missing entry"
            Expect.isLessThan (scalar ((trainMask - (mask + hidden)).abs().max())) 1e-15 "training mask adds the hidden entries"
            Expect.equal (scalar (hidden.sum())) (Math.Round(0.05 * scalar ((1.0 - mask).sum()))) "round(fraction x observed) entries"
            let trailing = scalar (hidden.narrow(1L, 7L, 3L).sum()) / scalar (hidden.sum())
            Expect.isGreaterThan trailing 0.9 "almost all hidden entries in the columns that go missing"
            let _, uniform = Selection.holdOut 4L 0.05 mask
            Expect.isLessThan (scalar (uniform.narrow(1L, 7L, 3L).sum()) / scalar (uniform.sum())) 0.3 "a uniform hold-out mostly hides leading cells"
            let _, again = Selection.holdOutLikeMissingness 4L 0.05 mask
            Expect.isTrue (hidden.eq(again).all().item<bool>()) "same seed"
            let full = torch.ones(50L, 3L, dtype = dtype)
            full[7, 1] <- torch.tensor(0.0, dtype = dtype)
            let kept, _ = Selection.holdOutLikeMissingness 3L 0.99 full
            Expect.equal (scalar ((1.0 - kept).sum(dim = 0L)[1])) 1.0 "never empties a column"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> Selection.holdOutLikeMissingness 1L 1.0 mask |> ignore) "fraction 1"
        }
        test "a hold-out of whole patterns hides blocks that some row really misses, about the requested share" {
            // Columns 0-4 always observed; 5-7 go missing together in 40% of rows, 8 alone in another 10%.
            use gen = generator 31L
            let u = torch.rand(3000L, dtype = dtype, generator = gen)
            let block = u.lt(sc 0.4).to_type(dtype).unsqueeze(1L).expand(3000L, 3L)
            let alone = (u.ge(sc 0.4) * u.lt(sc 0.5)).to_type(dtype).unsqueeze(1L)
            let mask = torch.cat([| torch.zeros(3000L, 5L, dtype = dtype); block; alone |], 1L).contiguous()
            let trainMask, hidden = Selection.holdOutLikePatternsGrouped [||] 4L 0.05 mask
            Expect.equal (scalar ((hidden * mask).sum())) 0.0 "never a missing entry"
            Expect.isLessThan (scalar ((trainMask - (mask + hidden)).abs().max())) 1e-15 "training mask adds the hidden entries"
            let target = Math.Round(0.05 * scalar ((1.0 - mask).sum()))
            let count = scalar (hidden.sum())
            Expect.isTrue (count >= target && count < target + 9.0) (sprintf "round(fraction x observed) entries, plus at most one row's pattern: %g for %g" count target)
            Expect.equal (scalar (hidden.narrow(1L, 0L, 5L).sum())) 0.0 "nothing hidden in the columns that never go missing"
            let b = hidden.narrow(1L, 5L, 3L)
            Expect.isTrue (b.eq(b.narrow(1L, 0L, 1L).expand(3000L, 3L)).all().item<bool>()) "columns 5-7 held out together, as they go missing"
            Expect.equal (scalar ((b.narrow(1L, 0L, 1L) * hidden.narrow(1L, 8L, 1L)).sum())) 0.0 "no row mixes two patterns"
            let _, again = Selection.holdOutLikePatternsGrouped [||] 4L 0.05 mask
            Expect.isTrue (hidden.eq(again).all().item<bool>()) "same seed"
            let _, other = Selection.holdOutLikePatternsGrouped [||] 5L 0.05 mask
            Expect.isFalse (hidden.eq(other).all().item<bool>()) "another seed, another draw"
            // A row never loses its last observed entry, a column never its last one.
            let sparse = torch.ones(40L, 3L, dtype = dtype)
            sparse.select(1L, 0L).zero_() |> ignore
            sparse[0, 1] <- torch.tensor(0.0, dtype = dtype)
            let kept, _ = Selection.holdOutLikePatternsGrouped [||] 3L 0.9 sparse
            Expect.isTrue ((1.0 - kept).sum(dim = 1L).ge(sc 1.0).all().item<bool>()) "every row keeps an observed entry"
            Expect.equal (scalar ((1.0 - kept).sum(dim = 0L)[1])) 1.0 "the only observed entry of column 1 stays"
            // Nothing missing: no pattern to lend, so the uniform draw.
            let full = torch.zeros(200L, 4L, dtype = dtype)
            let uniform, _ = Selection.holdOutGrouped [||] 6L 0.1 full
            let patterns, _ = Selection.holdOutLikePatternsGrouped [||] 6L 0.1 full
            Expect.isTrue (uniform.eq(patterns).all().item<bool>()) "the uniform draw where nothing is missing"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> Selection.holdOutLikePatternsGrouped [||] 1L 1.0 mask |> ignore) "fraction 1"
        }
        test "a hold-out of whole patterns keeps a column group whole" {
            // Columns 1-3 are one categorical column's indicators; a pattern that misses the group misses all three.
            let groups = [| 0; 1; 1; 1; 2 |]
            let cells = Missingness.mcar 6L 0.3 (2000, 3)
            let mask = torch.cat([| cells.narrow(1L, 0L, 1L); cells.narrow(1L, 1L, 1L).expand(2000L, 3L); cells.narrow(1L, 2L, 1L) |], 1L).contiguous()
            let _, hidden = Selection.holdOutLikePatternsGrouped groups 7L 0.1 mask
            let block = hidden.narrow(1L, 1L, 3L)
            Expect.isTrue (block.eq(block.narrow(1L, 0L, 1L).expand(2000L, 3L)).all().item<bool>()) "no group hidden in part"
            Expect.isGreaterThan (scalar (block.sum())) 0.0 "the group is held out in some rows"
        }
        test "missing odds rank rows by how likely their cell is to be missing, given the rest of the row" {
            // Column 2 goes missing with probability sigmoid(3 x0 - 1.5); columns 0 and 1 are always observed.
            use gen = generator 21L
            let x = torch.rand(4000L, 3L, dtype = dtype, generator = gen)
            let truth = (x.select(1L, 0L) * 3.0 - 1.5).sigmoid()
            let mask = torch.zeros(4000L, 3L, dtype = dtype)
            mask.select(1L, 2L).copy_(torch.rand(4000L, dtype = dtype, generator = gen).lt(truth).to_type(dtype)) |> ignore
            let odds = Selection.missingOdds (x * (1.0 - mask)) mask
            let estimated = odds.select(1L, 2L)
            let fitted = estimated / (estimated + 1.0)
            Expect.isLessThan (scalar ((fitted - truth).abs().max())) 0.08 "the fitted probability is close to the mechanism's"
            Expect.isTrue (odds.narrow(1L, 0L, 2L).eq(torch.tensor(1.0, dtype = dtype)).all().item<bool>()) "columns never missing: odds 1"
            // A table longer than MaxOddsRows: the regressions see every third row, and every row gets its odds.
            let long = 2 * Selection.MaxOddsRows + 1 |> int64
            let lx = torch.rand(long, 2L, dtype = dtype, generator = gen)
            let lTruth = (lx.select(1L, 0L) * 3.0 - 1.5).sigmoid()
            let lMask = torch.zeros(long, 2L, dtype = dtype)
            lMask.select(1L, 1L).copy_(torch.rand(long, dtype = dtype, generator = gen).lt(lTruth).to_type(dtype)) |> ignore
            let lOdds = (Selection.missingOdds (lx * (1.0 - lMask)) lMask).select(1L, 1L)
            Expect.isLessThan (scalar ((lOdds / (lOdds + 1.0) - lTruth).abs().max())) 0.08 "a long table: every row's probability close"
            let mcar = Missingness.mcar 23L 0.3 (4000, 3)
            let atRandom = Selection.missingOdds (x * (1.0 - mcar)) mcar
            Expect.isTrue (atRandom.eq(torch.tensor(1.0, dtype = dtype)).all().item<bool>()) "missing completely at random: odds 1, not fitted noise"
            let wide = Selection.missingOdds (torch.zeros(10L, Selection.MaxOddsColumns + 1 |> int64, dtype = dtype)) (Missingness.mcar 2L 0.3 (10, Selection.MaxOddsColumns + 1))
            Expect.isTrue (wide.eq(torch.tensor(1.0, dtype = dtype)).all().item<bool>()) "a table too wide to model: odds 1"
        }
        test "odds weights put a held-out column's weight on the rows most like its missing ones, averaging 1" {
            use gen = generator 22L
            let x = torch.rand(3000L, 4L, dtype = dtype, generator = gen)
            let prob = (x.select(1L, 0L) * 4.0 - 2.0).sigmoid()
            let mask = torch.zeros(3000L, 4L, dtype = dtype)
            mask.select(1L, 3L).copy_(torch.rand(3000L, dtype = dtype, generator = gen).lt(prob).to_type(dtype)) |> ignore
            let observed = x * (1.0 - mask)
            let _, hidden = Selection.holdOutLikeMissingness 5L 0.05 mask
            let w = Selection.oddsWeights observed mask hidden
            Expect.equal (scalar ((w * (1.0 - hidden)).abs().sum())) 0.0 "0 off the held-out entries"
            Expect.isGreaterThan (scalar (w.min())) -1e-15 "never negative"
            let column = hidden.select(1L, 3L)
            Expect.floatClose Accuracy.high (scalar (w.select(1L, 3L).sum() / column.sum())) 1.0 "a column's weights average 1"
            Expect.isLessThan (scalar (w.max())) (Selection.MaxOddsRatio + 1e-9) "capped"
            let driverMean (weights: torch.Tensor) = scalar ((x.select(1L, 0L) * weights).sum() / weights.sum())
            let weighted = driverMean (w.select(1L, 3L))
            let plain = driverMean column
            let missingRows = driverMean (mask.select(1L, 3L))
            Expect.isGreaterThan weighted (plain + 0.1) "weighted, the held-out rows move toward the missing rows' driver values"
            Expect.isLessThan (abs (weighted - missingRows)) 0.05 "and come close to them"
            Expect.isTrue (w.narrow(1L, 0L, 3L).eq(hidden.narrow(1L, 0L, 3L)).all().item<bool>()) "columns never missing keep weight 1"
        }
        test "weighted hidden entries count in proportion to their weight in the blend" {
            // a is exact on rows 0-1 and off by 1 on rows 2-3, b the other way round; rows 2-3 weigh 3 each.
            let truth = torch.zeros(4L, 1L, dtype = dtype)
            let a = torch.tensor([| 0.0; 0.0; 1.0; 1.0 |], dtype = dtype).reshape(4L, 1L)
            let b = torch.tensor([| 1.0; 1.0; 0.0; 0.0 |], dtype = dtype).reshape(4L, 1L)
            let plain = torch.ones(4L, 1L, dtype = dtype)
            let weighted = torch.tensor([| 1.0; 1.0; 3.0; 3.0 |], dtype = dtype).reshape(4L, 1L)
            let grid = Selection.simplexGrid 2 10
            Expect.floatClose Accuracy.high ((Selection.blendWeights grid 0.0 truth [| a; b |] plain)[0, 1] |> scalar) 0.5 "equal weights: the middle"
            // With a's weight w the error is 2(1 - w)^2 + 6 w^2, least at w = 0.25; the grid's nearest are 0.2 and 0.3.
            let w = (Selection.blendWeights grid 0.0 truth [| a; b |] weighted)[0, 0] |> scalar
            Expect.isTrue (abs (w - 0.2) < 1e-12 || abs (w - 0.3) < 1e-12) (sprintf "weight of a %g: the rows that weigh more pull toward b, exact there" w)
            Expect.floatClose Accuracy.high ((Selection.blendShares [| 0.0 .. 0.25 .. 1.0 |] truth a b weighted)[0] |> scalar) 0.75 "the two-candidate share of b the same"
        }
        test "score is the RMSE over hidden entries, NaN with none" {
            let truth = torch.zeros(2L, 2L, dtype = dtype)
            let imputed = torch.tensor([| 3.0; 9.0; 4.0; 9.0 |], dtype = dtype).reshape(2L, 2L)
            let hidden = torch.tensor([| 1.0; 0.0; 1.0; 0.0 |], dtype = dtype).reshape(2L, 2L)
            Expect.floatClose Accuracy.high (Selection.score truth imputed hidden) (sqrt 12.5) "sqrt((9 + 16) / 2)"
            Expect.isTrue (Double.IsNaN (Selection.score truth imputed (torch.zeros_like(hidden)))) "NaN"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> Selection.holdOut 1L 1.0 hidden |> ignore) "fraction 1"
        }
        test "score gives the bits of its former formula, sqrt(Σ ((x̂ − x) · h)² / Σ h)" {
            // EMFlow keeps the iteration with the lowest score: the score must not move when its implementation does.
            use gen = generator 11L
            for n in [ 50L; 97L; 500L; 20000L ] do
                let truth = torch.randn([| n; 6L |], dtype = dtype, generator = gen)
                let imputed = torch.randn([| n; 6L |], dtype = dtype, generator = gen)
                let hidden = torch.rand([| n; 6L |], dtype = dtype, generator = gen).lt(sc 0.2).to_type(dtype)
                let former = Math.Sqrt(scalar ((((imputed - truth) * hidden).pow(sc 2.0)).sum()) / scalar (hidden.sum()))
                Expect.equal (Selection.score truth imputed hidden) former (sprintf "n = %d" n)
        }
        test "blend shares pick, per feature, the mix that is best on that feature's hidden entries" {
            // Column 0: truth = a; column 1: truth = b; column 2: truth halfway; column 3: nothing hidden.
            let truth = torch.tensor(array2D [ [ 0.0; 1.0; 0.5; 0.0 ]; [ 0.0; 1.0; 0.5; 0.0 ] ], dtype = dtype)
            let a = torch.zeros(2L, 4L, dtype = dtype)
            let b = torch.ones(2L, 4L, dtype = dtype)
            let hidden = torch.tensor(array2D [ [ 1.0; 1.0; 1.0; 0.0 ]; [ 1.0; 0.0; 1.0; 0.0 ] ], dtype = dtype)
            let grid = [| 0.0; 0.25; 0.5; 0.75; 1.0 |]
            let shares = Selection.blendShares grid truth a b hidden |> Tensors.toArray
            Expect.sequenceEqual shares.[0..2] [| 0.0; 1.0; 0.5 |] "each hidden feature its own best share"
            // Over all hidden entries the error is 2w² + (1 − w)² + 2(w − 0.5)² = 5w² − 4w + 1.5: 0.5 on this grid.
            Expect.equal shares.[3] 0.5 "a feature without hidden entries takes the overall best"
            let none = Selection.blendShares grid truth a b (torch.zeros_like(hidden)) |> Tensors.toArray
            Expect.sequenceEqual none [| 0.0; 0.0; 0.0; 0.0 |] "nothing hidden: all a"
            let mixed = Selection.blend (torch.tensor([| 0.0; 1.0; 0.5; 0.25 |], dtype = dtype)) a b |> Tensors.toArray2D
            Expect.equal mixed.[1, 2] 0.5 "the blend"
        }
        test "the simplex grid holds every weight vector in steps that sums to 1, the first candidate's largest first" {
            let grid = Selection.simplexGrid 3 10
            Expect.equal grid.Length 66 "C(12, 2) vectors"
            Expect.sequenceEqual grid[0] [| 1.0; 0.0; 0.0 |] "all first candidate first"
            Expect.sequenceEqual grid[grid.Length - 1] [| 0.0; 0.0; 1.0 |] "all last candidate last"
            for w in grid do Expect.floatClose Accuracy.high (Array.sum w) 1.0 "sums to 1"
            Expect.equal (grid |> Array.map (fun w -> String.Join(",", w)) |> Array.distinct).Length 66 "no repeats"
            Expect.equal (Selection.simplexGrid 2 10 |> Array.map (fun w -> w[1])) Starts.shareGrid "two candidates: the share grid"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> Selection.simplexGrid 0 10 |> ignore) "k = 0"
        }
        test "blend weights pick, per feature, the mix best on its hidden entries, pulled toward the table's best by the prior" {
            use gen = generator 5L
            let n = 400L
            let truth = torch.rand([| n; 3L |], dtype = dtype, generator = gen)
            let noise () = torch.randn([| n; 3L |], dtype = dtype, generator = gen) |> scaleBy 0.1
            // Candidate 0 is exact on column 0, candidate 1 on column 1, candidate 2 on column 2; the others are noisy.
            let exactOn j = truth + noise () * (torch.ones(3L, dtype = dtype).index_fill(0L, torch.tensor([| int64 j |]), sc 0.0))
            let candidates = [| exactOn 0; exactOn 1; exactOn 2 |]
            let hidden = torch.rand([| n; 3L |], dtype = dtype, generator = gen).lt(sc 0.5).to_type(dtype)
            let grid = Selection.simplexGrid 3 10
            let own = Selection.blendWeights grid 0.0 truth candidates hidden |> Tensors.toArray2D
            for j in 0 .. 2 do
                for c in 0 .. 2 do Expect.equal own[j, c] (if c = j then 1.0 else 0.0) (sprintf "feature %d, candidate %d" j c)
            // A prior far larger than the hidden entries makes every feature take the table's best weights.
            let pooled = Selection.blendWeights grid 1e9 truth candidates hidden |> Tensors.toArray2D
            for j in 1 .. 2 do
                for c in 0 .. 2 do Expect.equal pooled[j, c] pooled[0, c] "one vector for all features"
            // A feature without hidden entries takes the table's best; nothing hidden at all: the first candidate.
            let noneOn2 = hidden * torch.tensor([| 1.0; 1.0; 0.0 |], dtype = dtype)
            let partial = Selection.blendWeights grid 0.0 truth candidates noneOn2 |> Tensors.toArray2D
            let overall = Selection.blendWeights grid 1e9 truth candidates noneOn2 |> Tensors.toArray2D
            for c in 0 .. 2 do Expect.equal partial[2, c] overall[0, c] "no hidden entries: the pooled best"
            let nothing = Selection.blendWeights grid 0.0 truth candidates (torch.zeros_like(hidden)) |> Tensors.toArray2D
            for j in 0 .. 2 do Expect.sequenceEqual [| nothing[j, 0]; nothing[j, 1]; nothing[j, 2] |] [| 1.0; 0.0; 0.0 |] "first candidate"
            let blended = Selection.blendAll (torch.tensor(array2D [ [ 1.0; 0.0; 0.0 ]; [ 0.0; 1.0; 0.0 ]; [ 0.0; 0.0; 1.0 ] ], dtype = dtype)) candidates
            Expect.isTrue (blended.allclose(truth)) "the identity weights give back each exact column"
        }
        test "a grouped hold-out hides a group's entries of a row together, about the requested share of cells" {
            // Columns 0 and 4 alone; 1-3 one categorical column's indicators, missing together.
            let groups = [| 0; 1; 1; 1; 2 |]
            let cells = Missingness.mcar 6L 0.2 (3000, 3)
            let mask = torch.cat([| cells.narrow(1L, 0L, 1L); cells.narrow(1L, 1L, 1L).expand(3000L, 3L); cells.narrow(1L, 2L, 1L) |], 1L).contiguous()
            for draw in [ Selection.holdOutGrouped groups; Selection.holdOutLikeMissingnessGrouped groups ] do
                let trainMask, hidden = draw 7L 0.1 mask
                Expect.equal (scalar ((hidden * mask).sum())) 0.0 "never a missing entry"
                Expect.isLessThan (scalar ((trainMask - (mask + hidden)).abs().max())) 1e-15 "training mask adds the hidden entries"
                let block = hidden.narrow(1L, 1L, 3L)
                Expect.isTrue (block.eq(block.narrow(1L, 0L, 1L).expand(3000L, 3L)).all().item<bool>()) "no group hidden in part"
                // Cells: the group counts once per row.
                let hiddenCells = scalar (hidden.sum()) - 2.0 * scalar (block.narrow(1L, 0L, 1L).sum())
                let observedCells = scalar ((1.0 - cells).sum())
                Expect.floatClose { absolute = 2.0; relative = 0.0 } hiddenCells (Math.Round(0.1 * observedCells)) "10% of observed cells"
                let shareOfGroup = scalar (block.narrow(1L, 0L, 1L).sum()) / hiddenCells
                Expect.isLessThan (abs (shareOfGroup - 1.0 / 3.0)) 0.05 "the group is one column of three, not three"
                let _, again = draw 7L 0.1 mask
                Expect.isTrue (hidden.eq(again).all().item<bool>()) "same seed"
            let ungrouped, _ = Selection.holdOut 7L 0.1 mask
            let singletons, _ = Selection.holdOutGrouped [| 0; 1; 2; 3; 4 |] 7L 0.1 mask
            Expect.isTrue (ungrouped.eq(singletons).all().item<bool>()) "every column alone: the plain hold-out, entry for entry"
            Expect.throwsT<ArgumentException> (fun () -> Selection.holdOutGrouped [| 0; 1; 1 |] 7L 0.1 mask |> ignore) "one group per column"
        }
        test "grouped blends give a group's columns one weight, the best for the group as a whole" {
            // Columns 0 and 1 form a group: a is exact on column 0, b on column 1 with a larger error elsewhere.
            let truth = torch.tensor(array2D [ [ 0.0; 1.0; 0.5 ]; [ 0.0; 1.0; 0.5 ] ], dtype = dtype)
            let a = torch.tensor(array2D [ [ 0.0; 0.0; 0.0 ]; [ 0.0; 0.0; 0.0 ] ], dtype = dtype)
            let b = torch.tensor(array2D [ [ 2.0; 1.0; 1.0 ]; [ 2.0; 1.0; 1.0 ] ], dtype = dtype)
            let hidden = torch.ones(2L, 3L, dtype = dtype)
            let grid = [| 0.0; 0.25; 0.5; 0.75; 1.0 |]
            let alone = Selection.blendShares grid truth a b hidden |> Tensors.toArray
            Expect.sequenceEqual alone [| 0.0; 1.0; 0.5 |] "each column alone"
            // Group error per row: (2w)² + (1 − w)², least at w = 0.2: 0.25 on this grid.
            let grouped = Selection.blendSharesGrouped [| 0; 0; 1 |] grid truth a b hidden |> Tensors.toArray
            Expect.sequenceEqual grouped [| 0.25; 0.25; 0.5 |] "one share for the group"
            let weights = Selection.blendWeightsGrouped [| 0; 0; 1 |] (Selection.simplexGrid 2 4) 0.0 truth [| a; b |] hidden |> Tensors.toArray2D
            Expect.sequenceEqual [| weights[0, 1]; weights[1, 1]; weights[2, 1] |] [| 0.25; 0.25; 0.5 |] "the weights too"
        }
    ]
