/// The composite RealNVP flow and the functions on flow layers (Flow.fs): construction from a configuration,
/// seeding, freezing, state, save and load. The FlowLayer contract is checked in FlowLayerTests.
module EMFlow.Tests.FlowTests

open System
open System.Collections.Generic
open System.IO
open Expecto
open TorchSharp
open EMFlow.Tensors
open EMFlow.Coupling
open EMFlow.Flow
open EMFlow.Tests.FlowLayerTests

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
        testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = 30 } "a randomised flow inverts for any seed and shape" flowInverts

        test "a pass equals the couplings applied one by one, for masks that swap the halves and for those that do not" {
            // Alternating masks (p >= 2) and checkerboards take the path that carries the two halves between layers;
            // p = 1 takes the layer-by-layer one. Both must compute the same map and log-determinant.
            for config in [ small 5; small 6; { small 24 with Masks = Checkerboard 6 }; small 1; { small 7 with Network = DenseJoint; SingleNetworks = true; Activation = EMFlow.CouplingNetworks.Relu } ] do
                use flow = create config
                randomise 21L flow
                use z = rows 22L 9 config.Features
                let x, ld = toData flow z
                use x = x
                use ld = ld
                let mutable cur = z.alias()
                let mutable total = torch.zeros(9L, dtype = dtype)
                for l in flow.Couplings do
                    let next, d = l.Forward cur
                    cur <- next
                    total <- total + d
                Expect.isLessThan (maxAbsDiff x cur) 1e-12 (sprintf "map, p = %d" config.Features)
                Expect.isLessThan (maxAbsDiff ld total) 1e-12 (sprintf "log-determinant, p = %d" config.Features)
                let zBack, ldBack = toLatent flow x
                use zBack = zBack
                use ldBack = ldBack
                let mutable back = x.alias()
                let mutable totalBack = torch.zeros(9L, dtype = dtype)
                for l in Array.rev flow.Couplings do
                    let next, d = l.Inverse back
                    back <- next
                    totalBack <- totalBack + d
                Expect.isLessThan (maxAbsDiff zBack back) 1e-12 (sprintf "inverse map, p = %d" config.Features)
                Expect.isLessThan (maxAbsDiff ldBack totalBack) 1e-12 (sprintf "inverse log-determinant, p = %d" config.Features)
        }

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
            test "a checkerboard flow inverts; its width must divide p" {
                use flow = create { small 24 with Masks = Checkerboard 6 }
                use gen = generator 3L
                flow.Reset gen
                use x = rows 4L 5 24
                let z, _ = toLatent flow x
                let back, _ = toData flow z
                Expect.isLessThan (scalar ((back - x).abs().max())) 1e-10 "inverts"
                Expect.throwsT<ArgumentException> (fun () -> create { small 24 with Masks = Checkerboard 5 } |> ignore) "width must divide p"
                Expect.throwsT<ArgumentException>
                    (fun () -> create { small 24 with Network = Convolutional 7 } |> ignore) "convolutional width must divide p"
            }
            test "maskOf gives each layer its pattern's mask" {
                for k in 0 .. 3 do
                    Expect.equal (maskOf Alternating 5 k) (alternatingMask 5 k) (sprintf "alternating, layer %d" k)
                    Expect.equal (maskOf (Checkerboard 6) 24 k) (checkerboardMask 6 24 k) (sprintf "checkerboard, layer %d" k)
                use flow = create { small 24 with Layers = 2; Masks = Checkerboard 6 }
                for k in 0 .. 1 do
                    let kept = [| for j in 0 .. 23 do if (maskOf (Checkerboard 6) 24 k)[j] then int64 j |]
                    Expect.equal flow.Couplings[k].Kept kept (sprintf "layer %d keeps its mask's features" k)
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
