/// The first stage of the pipeline: checks a user's table once, at the public entry point, and turns it
/// into a value tensor and a mask. Everything after it may assume valid input.
module EMFlow.Validation

open System
open TorchSharp
open EMFlow.Tensors

/// A checked table: values (n, p) with missing entries set to 0.0 (never NaN, so they cannot leak into
/// sums), and the mask (n, p), 1.0 where missing.
type Checked = { Values: Tensor; Mask: Tensor; Rows: int; Columns: int }

/// Checks a (n, p) table in which NaN marks a missing value, or, with `missing` given, in which
/// `missing[i, j] = true` marks it (the value there is then ignored, whatever it is).
/// <exception cref="ArgumentNullException">`data` is null.</exception>
/// <exception cref="ArgumentException">The table is empty; an observed value is infinite (or NaN where an
/// explicit mask says observed); the mask's shape differs; or a column has no observed value (drop it: no
/// method can learn a feature it never sees). All-missing rows, constant columns and n &lt; p are accepted.</exception>
let check (paramName: string) (data: float[,]) (missing: bool[,] option) : Checked =
    if isNull data then raise (ArgumentNullException paramName)
    let n, p = Array2D.length1 data, Array2D.length2 data
    if n = 0 || p = 0 then invalidArg paramName (sprintf "Expected a table with at least one row and one column; got %d x %d." n p)
    match missing with
    | Some m when isNull m -> raise (ArgumentNullException "missing")
    | Some m when Array2D.length1 m <> n || Array2D.length2 m <> p ->
        invalidArg "missing" (sprintf "The mask must have the data's shape %d x %d; got %d x %d." n p (Array2D.length1 m) (Array2D.length2 m))
    | _ -> ()
    let values = Array.zeroCreate<float> (n * p)
    let mask = Array.zeroCreate<float> (n * p)
    let observedPerColumn = Array.zeroCreate<int> p
    for i in 0 .. n - 1 do
        for j in 0 .. p - 1 do
            let v = data[i, j]
            let isMissing =
                match missing with
                | Some m ->
                    if not m[i, j] && Double.IsNaN v then
                        invalidArg paramName (sprintf "Entry (%d, %d) is NaN but the mask marks it observed." i j)
                    m[i, j]
                | None -> Double.IsNaN v
            if isMissing then mask[i * p + j] <- 1.0
            else
                if Double.IsInfinity v then
                    invalidArg paramName (sprintf "Entry (%d, %d) is %g; observed values must be finite (use NaN for missing)." i j v)
                values[i * p + j] <- v
                observedPerColumn[j] <- observedPerColumn[j] + 1
    match Array.tryFindIndex ((=) 0) observedPerColumn with
    | Some j -> invalidArg paramName (sprintf "Column %d has no observed value; drop it before imputing." j)
    | None -> ()
    // Callers may run outside a dispose scope: a temporary tensor nobody holds can be finalized while the next call
    // reads it, so each is held (and freed) here.
    use flatValues = torch.tensor(values, dtype = dtype)
    use flatMask = torch.tensor(mask, dtype = dtype)
    { Values = flatValues.reshape(int64 n, int64 p)
      Mask = flatMask.reshape(int64 n, int64 p)
      Rows = n
      Columns = p }

/// Raises ArgumentException unless a table to transform has the `expected` number of columns.
let checkColumns (paramName: string) (expected: int) (c: Checked) =
    if c.Columns <> expected then
        invalidArg paramName (sprintf "Expected %d features, got %d (the model was fitted on %d)." expected c.Columns expected)

/// Like <see cref="check"/> for rows to transform with an already fitted model: columns with no observed
/// value are allowed here (their entries are imputed from the model), but the column count must match.
let checkForTransform (paramName: string) (expected: int) (data: float[,]) (missing: bool[,] option) : Checked =
    if isNull data then raise (ArgumentNullException paramName)
    let p = Array2D.length2 data
    if p <> expected then invalidArg paramName (sprintf "Expected %d features, got %d (the model was fitted on %d)." expected p expected)
    let n = Array2D.length1 data
    // A column may be entirely missing in a handful of new rows; check it with one fake observed row removed.
    let padded = Array2D.init (n + 1) p (fun i j -> if i < n then data[i, j] else 0.0)
    let paddedMask = missing |> Option.map (fun m -> Array2D.init (n + 1) p (fun i j -> i < n && m[i, j]))
    let c = check paramName padded paddedMask
    use values = c.Values
    use mask = c.Mask
    { Values = values.narrow(0L, 0L, int64 n); Mask = mask.narrow(0L, 0L, int64 n); Rows = n; Columns = p }

/// The rows of a checked table as a (n, p) array with NaN where missing (for returning to a caller).
let toNaNArray (values: Tensor) (mask: Tensor) : float[,] =
    toArray2D (torch.where(mask.gt(sc 0.5), torch.full_like(values, sc nan), values))
