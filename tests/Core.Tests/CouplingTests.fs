/// The affine coupling layer and its masks (Coupling.fs). The FlowLayer contract they share with flows is in
/// FlowLayerTests.
module EMFlow.Tests.CouplingTests

open System
open Expecto
open TorchSharp
open EMFlow.Tensors
open EMFlow.Coupling
open EMFlow.Flow
open EMFlow.Tests.FlowLayerTests

[<Tests>]
let tests =
    testList "Coupling" [
        testList "masks" [
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
            }
            test "bad mask arguments throw ArgumentException" {
                Expect.throwsT<ArgumentException> (fun () -> alternatingMask 0 0 |> ignore) "no features"
                Expect.throwsT<ArgumentException> (fun () -> alternatingMask 3 -1 |> ignore) "negative layer"
                Expect.throwsT<ArgumentException> (fun () -> checkerboardMask 5 24 0 |> ignore) "width must divide p"
                Expect.throwsT<ArgumentException> (fun () -> checkerboardMask 6 24 -1 |> ignore) "negative layer, checkerboard"
            }
        ]

        testList "affine coupling" [
            test "a convolutional coupling's s and t at a pixel see only its neighbourhood" {
                // Depth 1: two 3 x 3 convolutions, so a pixel's output depends on pixels at most 2 rows and 2 columns away.
                use layer = new AffineCoupling(64, checkerboardMask 8 64 0, 4, 1, 9L, convolutionWidth = Some 8)
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
                    (fun () -> new AffineCoupling(24, checkerboardMask 6 24 0, 4, 1, 1L, convolutionWidth = Some 5) |> ignore) "width must divide p"
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
            test "parameter names, which saved models depend on, are scale, s.*, t.* (dense) or st.* (convolutional)" {
                let names (layer: FlowLayer) = [ for struct (n, _) in layer.named_parameters() -> n ]
                use dense = new AffineCoupling(5, alternatingMask 5 0, 8, 1, 1L)
                Expect.equal (names dense) [ "scale"; "s.w0"; "s.w1"; "s.b0"; "s.b1"; "t.w0"; "t.w1"; "t.b0"; "t.b1" ] "dense"
                use elementwise = new AffineCoupling(1, alternatingMask 1 0, 8, 2, 1L)
                Expect.equal (names elementwise) [ "scale"; "s.b0"; "t.b0" ] "nothing kept: s and t are biases"
                use conv = new AffineCoupling(12, checkerboardMask 4 12 0, 3, 1, 1L, convolutionWidth = Some 4)
                Expect.equal (names conv) [ "scale"; "st.w0"; "st.w1"; "st.b0"; "st.b1" ] "convolutional"
            }
            test "bad arguments throw ArgumentException" {
                Expect.throwsT<ArgumentException> (fun () -> new AffineCoupling(3, [| true; true; true |], 8, 2, 1L) |> ignore) "nothing to transform"
                Expect.throwsT<ArgumentException> (fun () -> new AffineCoupling(3, [| true; false |], 8, 2, 1L) |> ignore) "mask length"
                Expect.throwsT<ArgumentException> (fun () -> new AffineCoupling(3, [| true; false; true |], 0, 2, 1L) |> ignore) "no hidden units"
                Expect.throwsT<ArgumentException> (fun () -> new AffineCoupling(3, [| true; false; true |], 8, -1, 1L) |> ignore) "negative depth"
                use x = rows 1L 4 2
                use layer = new AffineCoupling(3, [| true; false; true |], 8, 2, 1L)
                Expect.throwsT<ArgumentException> (fun () -> toData layer x |> ignore) "wrong feature count"
                Expect.throwsT<ArgumentException> (fun () -> toLatent layer x |> ignore) "wrong feature count, inverse"
            }
        ]
    ]
