module EMFlow.Tests.ValidationTests

open System
open Expecto
open EMFlow
open EMFlow.Tensors

let private throwsNaming<'e when 'e :> ArgumentException> (f: unit -> unit) (name: string) (fragment: string) =
    let ex = Expect.throwsC f id
    Expect.isTrue (ex :? 'e) (sprintf "expected %s, got %s" typeof<'e>.Name (ex.GetType().Name))
    let a = ex :?> ArgumentException
    Expect.equal a.ParamName name "parameter name"
    Expect.stringContains a.Message fragment "message names the problem"

[<Tests>]
let tests =
    testList "Validation" [
        test "NaN marks missing; values and mask come out separated" {
            let c = Validation.check "data" (array2D [ [ 1.0; nan ]; [ 3.0; 4.0 ] ]) None
            Expect.equal (toArray2D c.Mask) (array2D [ [ 0.0; 1.0 ]; [ 0.0; 0.0 ] ]) "mask"
            Expect.equal (toArray2D c.Values) (array2D [ [ 1.0; 0.0 ]; [ 3.0; 4.0 ] ]) "values, missing zeroed"
        }
        test "an explicit mask overrides the values" {
            let c = Validation.check "data" (array2D [ [ 1.0; 99.0 ] ; [ 2.0; 3.0 ] ]) (Some (array2D [ [ false; true ]; [ false; false ] ]))
            Expect.equal (toArray2D c.Values).[0, 1] 0.0 "masked value ignored"
        }
        test "infinite observed values are rejected naming the entry" {
            throwsNaming<ArgumentException> (fun () -> Validation.check "data" (array2D [ [ 1.0; infinity ]; [ 1.0; 2.0 ] ]) None |> ignore) "data" "(0, 1)"
        }
        test "an all-missing column is rejected naming the column" {
            throwsNaming<ArgumentException> (fun () -> Validation.check "data" (array2D [ [ 1.0; nan ]; [ 2.0; nan ] ]) None |> ignore) "data" "Column 1"
        }
        test "an all-missing row, a constant column and n < p are accepted" {
            let c = Validation.check "data" (array2D [ [ nan; nan; nan ]; [ 1.0; 5.0; 2.0 ] ]) None
            Expect.equal c.Rows 2 "rows"
        }
        test "NaN under an explicit observed mask is rejected" {
            throwsNaming<ArgumentException> (fun () -> Validation.check "data" (array2D [ [ nan ] ]) (Some (array2D [ [ false ] ])) |> ignore) "data" "NaN"
        }
        test "empty tables and mismatched masks are rejected" {
            throwsNaming<ArgumentException> (fun () -> Validation.check "data" (Array2D.zeroCreate 0 3) None |> ignore) "data" "0 x 3"
            throwsNaming<ArgumentException> (fun () -> Validation.check "data" (array2D [ [ 1.0 ] ]) (Some (Array2D.zeroCreate 2 2)) |> ignore) "missing" "shape"
            Expect.throwsT<ArgumentNullException> (fun () -> Validation.check "data" null None |> ignore) "null"
        }
        test "transform checks the column count and allows an unseen-column pattern" {
            throwsNaming<ArgumentException> (fun () -> Validation.checkForTransform "data" 3 (array2D [ [ 1.0; 2.0 ] ]) None |> ignore) "data" "Expected 3 features"
            let c = Validation.checkForTransform "data" 2 (array2D [ [ 1.0; nan ] ]) None
            Expect.equal (toArray2D c.Mask) (array2D [ [ 0.0; 1.0 ] ]) "one row back"
        }
    ]
