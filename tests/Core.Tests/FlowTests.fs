module EMFlow.Tests.FlowTests

open System
open System.Collections.Generic
open System.IO
open Expecto
open TorchSharp
open EMFlow.Tensors
open EMFlow.Flow
open EMFlow.Tests.TestUtil

/// Round trips in float64 lose only a few ulps per layer.
let roundTripTol = 1e-10
/// Central differences with h = 1e-5: truncation about h^2, cancellation about 1e-16 / h.
let jacobianTol = 1e-6
let fdStep = 1e-5

let small p = { Features = p; Layers = 4; Hidden = 8; Depth = 2; Seed = 11L; Masks = Alternating; Network = Dense }

/// Moves every parameter well away from its identity initialisation, so the contract checks exercise
/// non-trivial s and t networks.
let randomise (seed: int64) (flow: FlowLayer) =
    use gen = generator seed
    use _ = torch.no_grad()
    for p in flow.parameters() do
        use r = torch.randn(p.shape, dtype = dtype, generator = gen)
        use r2 = r * 0.5
        p.copy_(r2) |> ignore

let rows (seed: int64) (n: int) (p: int) =
    use gen = generator seed
    torch.randn([| int64 n; int64 p |], dtype = dtype, generator = gen)

let maxAbsDiff (a: Tensor) (b: Tensor) =
    use d = a - b
    use m = d.abs().max()
    scalar m

/// Same shape and the same float64 values, bit for bit (NaN never equal).
let bitEqual (a: Tensor) (b: Tensor) = a.shape = b.shape && toArray a = toArray b

let allFinite (t: Tensor) =
    use f = t.isfinite().all()
    f.item<bool>()

/// log|det J| per row of a row-wise map, from a central-difference Jacobian.
let finiteDifferenceLogDet (fdStep: float) (f: Tensor -> Tensor) (z: Tensor) : float[] =
    let n, p = int z.shape[0], int z.shape[1]
    let zs = toArray2D z
    let shifted (j: int) (delta: float) =
        ofArray2D (Array2D.init n p (fun i k -> if k = j then zs[i, k] + delta else zs[i, k]))
    // jac[i][r, c] = d f_r / d z_c at row i
    let jac = Array.init n (fun _ -> Array2D.zeroCreate<float> p p)
    for c in 0 .. p - 1 do
        use zp = shifted c fdStep
        use zm = shifted c -fdStep
        use yp = f zp
        use ym = f zm
        let ap, am = toArray2D yp, toArray2D ym
        for i in 0 .. n - 1 do
            for r in 0 .. p - 1 do
                jac[i][r, c] <- (ap[i, r] - am[i, r]) / (2.0 * fdStep)
    jac
    |> Array.map (fun j ->
        use jt = ofArray2D j
        use d = torch.linalg.det(jt)
        log (abs (scalar d)))

let paramValues (flow: FlowLayer) =
    flow.named_parameters() |> Seq.map (fun struct (n, p) -> n, toArray p) |> Seq.toList

/// Every layer type, and whole flows, each built fresh by its factory.
let layerCases : (string * (unit -> FlowLayer)) list =
    [ "coupling p=5, even features kept", (fun () -> new AffineCoupling(5, alternatingMask 5 0, 8, 2, 1L) :> FlowLayer)
      "coupling p=5, odd features kept", (fun () -> new AffineCoupling(5, alternatingMask 5 1, 8, 2, 2L) :> FlowLayer)
      "coupling p=3, depth 0", (fun () -> new AffineCoupling(3, alternatingMask 3 0, 8, 0, 3L) :> FlowLayer)
      "coupling p=2, depth 1", (fun () -> new AffineCoupling(2, [| false; true |], 4, 1, 4L) :> FlowLayer)
      "coupling p=1 (elementwise affine)", (fun () -> new AffineCoupling(1, alternatingMask 1 0, 8, 2, 5L) :> FlowLayer)
      "flow p=5", (fun () -> create (small 5) :> FlowLayer)
      "flow p=3", (fun () -> create (small 3) :> FlowLayer)
      "flow p=1", (fun () -> create (small 1) :> FlowLayer)
      "identity flow p=4", (fun () -> identity 4 :> FlowLayer)
      "convolutional coupling, 4 x 6 image, checkerboard", (fun () -> new AffineCoupling(24, checkerboardMask 6 24 0, 4, 2, 6L, Convolutional 6) :> FlowLayer)
      "convolutional coupling, 3 x 4 image, depth 0", (fun () -> new AffineCoupling(12, checkerboardMask 4 12 1, 3, 0, 7L, Convolutional 4) :> FlowLayer)
      "convolutional coupling, stripes", (fun () -> new AffineCoupling(12, alternatingMask 12 0, 3, 1, 8L, Convolutional 4) :> FlowLayer) ]

/// A stack of convolutional couplings: each layer's s and t are float32 functions of the previous layer's float64
/// output, so the composite map is only float32-smooth and its finite differences need a longer step and a
/// looser tolerance than the float64 layers' (a single layer's Jacobian stays exact: triangular, diagonal exp(s)).
let convolutionalFlowCase =
    "convolutional flow, 4 x 6 image", (fun () -> create { small 24 with Masks = Checkerboard 6; Network = Convolutional 6 } :> FlowLayer)

/// The finite-difference step and the tolerance of the log-determinant check: float64 layers, and float32-smooth ones.
let float64Jacobian, float32Jacobian = (fdStep, jacobianTol), (1e-3, 1e-3)

let contract (jacobian: float * float) (name: string) (make: unit -> FlowLayer) =
    let step, tol = jacobian
    testList name [
        test "forward keeps shape, is finite, and inverts" {
            use layer = make ()
            randomise 21L layer
            let p = layer.Features
            use z = rows 1L 16 p
            let x, ldF = toData layer z
            use x = x
            use ldF = ldF
            Expect.equal x.shape z.shape "shape kept"
            Expect.equal ldF.shape [| 16L |] "one log-determinant per row"
            Expect.isTrue (allFinite x && allFinite ldF) "finite"
            let z2, ldI = toLatent layer x
            use z2 = z2
            use ldI = ldI
            Expect.isLessThan (maxAbsDiff z2 z) roundTripTol "inverse(forward z) = z"
            use zero = torch.zeros([| 16L |], dtype = dtype)
            use sum = ldF + ldI
            Expect.isLessThan (maxAbsDiff sum zero) roundTripTol "log-determinants cancel"
        }
        test "inverse keeps shape, is finite, and inverts" {
            use layer = make ()
            randomise 22L layer
            use x = rows 2L 16 layer.Features
            let z, ldI = toLatent layer x
            use z = z
            use ldI = ldI
            Expect.isTrue (allFinite z && allFinite ldI) "finite"
            let x2, ldF = toData layer z
            use x2 = x2
            use ldF = ldF
            Expect.isLessThan (maxAbsDiff x2 x) roundTripTol "forward(inverse x) = x"
            Expect.isLessThan (maxAbsDiff ldF (ldI.neg())) roundTripTol "log-determinants cancel"
        }
        test "log-determinants match a finite-difference Jacobian" {
            use layer = make ()
            randomise 23L layer
            use z = rows 3L 4 layer.Features
            let x, ldF = toData layer z
            use x = x
            use ldF = ldF
            let fdF = finiteDifferenceLogDet step (fun t -> fst (toData layer t)) z
            let fdI = finiteDifferenceLogDet step (fun t -> fst (toLatent layer t)) x
            let z2, ldI = toLatent layer x
            z2.Dispose()
            use ldI = ldI
            let fwd, inv = toArray ldF, toArray ldI
            for i in 0 .. fwd.Length - 1 do
                Expect.floatClose { absolute = tol; relative = tol } fwd[i] fdF[i] (sprintf "forward row %d" i)
                Expect.floatClose { absolute = tol; relative = tol } inv[i] fdI[i] (sprintf "inverse row %d" i)
        }
        test "a fresh layer is exactly the identity" {
            use layer = make ()
            use z = rows 4L 8 layer.Features
            let x, ld = toData layer z
            use x = x
            use ld = ld
            Expect.isTrue (bitEqual x z) "output equals input bit for bit"
            Expect.isTrue (toArray ld |> Array.forall (fun v -> v = 0.0)) "log-determinant is exactly 0"
            let z2, ldI = toLatent layer z
            use z2 = z2
            use ldI = ldI
            Expect.isTrue (bitEqual z2 z) "inverse output equals input bit for bit"
            Expect.isTrue (toArray ldI |> Array.forall (fun v -> v = 0.0)) "inverse log-determinant is exactly 0"
        }
        test "outputs are new tensors: disposing them leaves the input usable" {
            use layer = make ()
            use z = rows 5L 3 layer.Features
            let x, ld = toData layer z
            x.Dispose()
            ld.Dispose()
            Expect.equal (toArray z).Length (3 * layer.Features) "input still readable"
        }
        test "gradients reach every parameter" {
            use layer = make ()
            // The identity flow has nothing to train; backward through it would have no graph.
            if (parameters layer).Length > 0 then
              randomise 24L layer
              use z = rows 6L 8 layer.Features
              let x, ld = toData layer z
              use x = x
              use ld = ld
              use sq = x * x
              use loss0 = sq.sum()
              use ldSum = ld.sum()
              use loss = loss0 + ldSum
              loss.backward()
              for struct (n, p) in layer.named_parameters() do
                  let g = p.grad
                  Expect.isNotNull (box g) (sprintf "%s has a gradient" n)
                  Expect.isTrue (allFinite g) (sprintf "%s gradient finite" n)
                  use gn = g.abs().sum()
                  Expect.isGreaterThan (scalar gn) 0.0 (sprintf "%s gradient non-zero" n)
        }
        test "reset makes a randomised layer the identity again" {
            use layer = make ()
            randomise 25L layer
            reset 99L layer
            use z = rows 7L 8 layer.Features
            let x, ld = toData layer z
            use x = x
            use ld = ld
            Expect.isTrue (bitEqual x z) "identity after reset"
            Expect.isTrue (toArray ld |> Array.forall (fun v -> v = 0.0)) "zero log-determinant after reset"
        }
    ]

let flowInverts (seed: int) (rowCount: byte) (featureCount: byte) =
    let p = 1 + int featureCount % 6
    let n = 1 + int rowCount % 10
    use flow = create { small p with Layers = 3; Seed = int64 seed }
    randomise (int64 seed) flow
    use z = rows (int64 seed) n p
    let x, ld = toData flow z
    use x = x
    use ld = ld
    let z2, ldI = toLatent flow x
    use z2 = z2
    use ldI = ldI
    use sum = ld + ldI
    maxAbsDiff z2 z < roundTripTol && (toArray sum |> Array.forall (fun v -> abs v < roundTripTol))

[<Tests>]
let tests =
    testList "Flow" [
        testList "contract" [
            for name, make in layerCases -> contract float64Jacobian name make
            contract float32Jacobian (fst convolutionalFlowCase) (snd convolutionalFlowCase) ]

        testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = 30 } "a randomised flow inverts for any seed and shape" flowInverts

        testList "construction" [
            test "the default flow is the paper's six couplings of 2 x 128, float64, starting at the identity" {
                use flow = create (defaultConfig 5 7L)
                Expect.equal flow.Couplings.Length 6 "six layers"
                Expect.isTrue (parameters flow |> Array.forall (fun p -> p.dtype = torch.float64)) "float64 parameters"
                use z = rows 8L 32 5
                let x, ld = toData flow z
                use x = x
                use ld = ld
                Expect.isTrue (bitEqual x z) "identity at start"
                Expect.isTrue (toArray ld |> Array.forall (fun v -> v = 0.0)) "zero log-determinant at start"
            }
            test "the identity flow has no parameters" {
                use flow = identity 3
                Expect.isEmpty (parameters flow) "no parameters"
                Expect.isEmpty (state flow) "empty state"
            }
            test "alternating masks transform every feature within two layers, odd p included" {
                for p in [ 2; 3; 5; 7 ] do
                    let m0, m1 = alternatingMask p 0, alternatingMask p 1
                    Expect.isTrue (Array.exists id m0 && Array.exists (not) m0) (sprintf "p=%d: layer 0 keeps some and transforms some" p)
                    Expect.isTrue (Array.forall2 (<>) m0 m1) (sprintf "p=%d: layer 1 swaps the roles" p)
                Expect.equal (alternatingMask 1 0) [| false |] "p=1: the single feature is always transformed"
                Expect.equal (alternatingMask 1 3) [| false |] "p=1: in every layer"
            }
            test "checkerboard masks pair every transformed pixel with its four neighbours and swap each layer" {
                // A 4 x 6 image: pixel (r, c) at column 6r + c.
                let m0, m1 = checkerboardMask 6 24 0, checkerboardMask 6 24 1
                Expect.isTrue (Array.forall2 (<>) m0 m1) "layer 1 swaps the roles"
                for r in 0 .. 3 do
                    for c in 0 .. 5 do
                        let j = 6 * r + c
                        if not m0.[j] then
                            for (dr, dc) in [ (-1, 0); (1, 0); (0, -1); (0, 1) ] do
                                let r2, c2 = r + dr, c + dc
                                if r2 >= 0 && r2 < 4 && c2 >= 0 && c2 < 6 then
                                    Expect.isTrue m0.[6 * r2 + c2] (sprintf "neighbour (%d, %d) of (%d, %d) kept" r2 c2 r c)
                // Alternating masks on an even width keep whole columns instead.
                Expect.isTrue (alternatingMask 24 0 |> Array.mapi (fun j k -> k = (j % 6 % 2 = 0)) |> Array.forall id) "stripes"
                use flow = create { small 24 with Masks = Checkerboard 6 }
                use gen = generator 3L
                flow.Reset gen
                use x = rows 4L 5 24
                let z, _ = toLatent flow x
                let back, _ = toData flow z
                Expect.isLessThan (scalar ((back - x).abs().max())) 1e-10 "inverts"
                Expect.throwsT<ArgumentException> (fun () -> create { small 24 with Masks = Checkerboard 5 } |> ignore) "width must divide p"
            }
            test "a convolutional coupling's s and t at a pixel see only its neighbourhood" {
                // Depth 1: two 3 x 3 convolutions, so a pixel's output depends on pixels at most 2 rows and 2 columns away.
                use layer = new AffineCoupling(64, checkerboardMask 8 64 0, 4, 1, 9L, Convolutional 8)
                randomise 31L layer
                use z = rows 10L 1 64
                // Pixel (0, 0) is kept (0 + 0 + 0 is even); move it and see which transformed pixels change.
                use bump = torch.zeros([| 1L; 64L |], dtype = dtype).index_fill(1L, torch.tensor([| 0L |]), sc 3.0)
                use z2 = z + bump
                let x1, _ = toData layer z
                let x2, _ = toData layer z2
                let a1, a2 = toArray x1, toArray x2
                let mutable nearChanged = 0
                for j in 1 .. 63 do
                    let r, c = j / 8, j % 8
                    if max r c > 2 then Expect.equal a2[j] a1[j] (sprintf "pixel (%d, %d) is out of reach" r c)
                    elif a2[j] <> a1[j] then nearChanged <- nearChanged + 1
                Expect.isGreaterThan nearChanged 0 "some pixel within reach changes"
                Expect.throwsT<ArgumentException>
                    (fun () -> new AffineCoupling(24, checkerboardMask 6 24 0, 4, 1, 1L, Convolutional 5) |> ignore) "width must divide p"
                Expect.throwsT<ArgumentException>
                    (fun () -> create { small 24 with Network = Convolutional 7 } |> ignore) "width must divide p (flow)"
            }
            test "a coupling layer keeps its part A unchanged after randomising" {
                use layer = new AffineCoupling(5, alternatingMask 5 0, 8, 2, 1L)
                randomise 30L layer
                use z = rows 9L 6 5
                let x, ld = toData layer z
                use x = x
                use ld = ld
                let za, xa = toArray2D z, toArray2D x
                for j in layer.Kept do
                    for i in 0 .. 5 do
                        Expect.equal xa[i, int j] za[i, int j] (sprintf "kept feature %d, row %d" j i)
                Expect.isGreaterThan (maxAbsDiff x z) 1e-3 "part B did change"
            }
            test "the scale is bounded: a huge raw s output gives finite output and |logDet| <= sum |scale|" {
                use layer = new AffineCoupling(4, alternatingMask 4 0, 8, 2, 1L)
                randomise 31L layer
                let named = dict [ for struct (n, p) in layer.named_parameters() -> n, p ]
                do
                    use _ = torch.no_grad()
                    named["s.b2"].fill_(1e6) |> ignore
                use z = rows 10L 5 4
                let x, ld = toData layer z
                use x = x
                use ld = ld
                Expect.isTrue (allFinite x && allFinite ld) "finite"
                let bound = toArray named["scale"] |> Array.sumBy abs
                Expect.isTrue (toArray ld |> Array.forall (fun v -> abs v <= bound + 1e-12)) "log-determinant bounded by the scales"
            }
            test "a fresh flow's output layers get gradient, so training can leave the identity" {
                use flow = create (small 4)
                use z = rows 11L 8 4
                let x, ld = toData flow z
                use x = x
                use ld = ld
                use shifted = x - 3.0
                use sq = shifted * shifted
                use loss = sq.sum()
                loss.backward()
                let outputBiasGrads =
                    [ for struct (n, p) in flow.named_parameters() do
                          if n.EndsWith ".t.b2" then scalar (p.grad.abs().sum()) ]
                Expect.equal outputBiasGrads.Length 4 "one t output bias per layer"
                Expect.isTrue (outputBiasGrads |> List.forall (fun g -> g > 0.0)) "every t output bias has gradient"
            }
            test "bad arguments throw ArgumentException" {
                use flow = create (small 3)
                use wrongP = rows 1L 4 2
                Expect.throwsT<ArgumentException> (fun () -> toData flow wrongP |> ignore) "wrong feature count"
                Expect.throwsT<ArgumentException> (fun () -> toLatent flow wrongP |> ignore) "wrong feature count, inverse"
                use oneD = torch.zeros([| 3L |], dtype = dtype)
                Expect.throwsT<ArgumentException> (fun () -> toData flow oneD |> ignore) "1-D input"
                use f32 = torch.zeros([| 2L; 3L |], dtype = torch.float32)
                Expect.throwsT<ArgumentException> (fun () -> toData flow f32 |> ignore) "float32 input"
                Expect.throwsT<ArgumentException> (fun () -> create { small 3 with Features = 0 } |> ignore) "no features"
                Expect.throwsT<ArgumentException> (fun () -> create { small 3 with Layers = -1 } |> ignore) "negative layers"
                Expect.throwsT<ArgumentException> (fun () -> create { small 3 with Hidden = 0 } |> ignore) "no hidden units"
                Expect.throwsT<ArgumentException> (fun () -> create { small 3 with Depth = -1 } |> ignore) "negative depth"
                Expect.throwsT<ArgumentException> (fun () -> new AffineCoupling(3, [| true; true; true |], 8, 2, 1L) |> ignore) "nothing to transform"
                Expect.throwsT<ArgumentException> (fun () -> new AffineCoupling(3, [| true; false |], 8, 2, 1L) |> ignore) "mask length"
            }
        ]

        testList "seeding" [
            test "the same seed gives identical parameters" {
                use a = create (small 5)
                use b = create (small 5)
                Expect.equal (paramValues a) (paramValues b) "same seed, same parameters"
            }
            test "a different seed gives different parameters" {
                use a = create (small 5)
                use b = create { small 5 with Seed = 12L }
                Expect.notEqual (paramValues a) (paramValues b) "different seed, different parameters"
            }
            test "reset with a seed equals a fresh flow with that seed" {
                use a = create (small 5)
                randomise 40L a
                reset 77L a
                use b = create { small 5 with Seed = 77L }
                Expect.equal (paramValues a) (paramValues b) "reset is deterministic"
            }
            test "reset keeps the parameter objects an optimiser holds" {
                use a = create (small 3)
                let before = parameters a
                reset 5L a
                let after = parameters a
                Expect.isTrue (Array.forall2 (fun (x: Parameter) y -> obj.ReferenceEquals(x, y)) before after) "same objects"
            }
        ]

        testList "freezing and state" [
            test "a frozen flow computes no gradients; unfreezing restores them" {
                use flow = create (small 3)
                setTrainable false flow
                Expect.isTrue (parameters flow |> Array.forall (fun p -> not p.requires_grad)) "frozen"
                use z = rows 12L 4 3
                let x, ld = toData flow z
                use x = x
                use ld = ld
                Expect.isFalse x.requires_grad "no graph through a frozen flow"
                setTrainable true flow
                Expect.isTrue (parameters flow |> Array.forall (fun p -> p.requires_grad)) "unfrozen"
            }
            test "state and loadState copy a flow's map into a flow of another seed" {
                use a = create (small 4)
                randomise 50L a
                use b = create { small 4 with Seed = 99L }
                let s = state a
                loadState b s
                for v in s.Values do v.Dispose()
                use z = rows 13L 6 4
                let xa, lda = toData a z
                let xb, ldb = toData b z
                use xa = xa
                use xb = xb
                use lda = lda
                use ldb = ldb
                Expect.isTrue (bitEqual xa xb && bitEqual lda ldb) "same map after loading"
            }
            test "state is a copy: changing the flow later leaves it unchanged" {
                use a = create (small 2)
                let s = state a
                let before = s.Values |> Seq.map toArray |> Seq.toList
                randomise 51L a
                let after = s.Values |> Seq.map toArray |> Seq.toList
                Expect.equal after before "state unchanged"
                for v in s.Values do v.Dispose()
            }
            test "loadState rejects missing, unknown and misshapen parameters" {
                use a = create (small 3)
                let full = state a
                let without = Dictionary<string, Tensor>(full)
                without.Remove "coupling0.scale" |> ignore
                Expect.throwsT<ArgumentException> (fun () -> loadState a without) "missing"
                let extra = Dictionary<string, Tensor>(full)
                use junk = torch.zeros([| 7L |], dtype = dtype)
                extra["coupling9.scale"] <- junk
                Expect.throwsT<ArgumentException> (fun () -> loadState a extra) "unknown"
                let wrongShape = Dictionary<string, Tensor>(full)
                wrongShape["coupling0.scale"] <- junk
                Expect.throwsT<ArgumentException> (fun () -> loadState a wrongShape) "shape"
                for v in full.Values do v.Dispose()
            }
            test "save and load through a stream reproduce the map" {
                use a = create (small 3)
                randomise 52L a
                use ms = new MemoryStream()
                save a ms
                ms.Position <- 0L
                use b = create { small 3 with Seed = 3L }
                load b ms
                Expect.equal (paramValues b) (paramValues a) "same parameters after a stream round trip"
            }
        ]
    ]
