/// Deedle interop: numeric data frames in and out of the (n, p) arrays the imputers take, with missing values
/// (Deedle's missing, or NaN) mapped to NaN and back. Named apart from Deedle's own Frame module so that both
/// namespaces can be opened together.
module EMFlow.Frames

open System
open Deedle

/// The numeric columns of a frame as an (n, p) array with NaN for missing values, and their keys.
/// Raises ArgumentException naming the first column that is not numeric (convert or drop it first).
let toArray (frame: Frame<'R, 'C>) : float[,] * 'C[] =
    if isNull (box frame) then nullArg "frame"
    let keys = frame.ColumnKeys |> Seq.toArray
    let rows = frame.RowKeys |> Seq.toArray
    let columns =
        keys |> Array.map (fun k ->
            try
                let series = frame.GetColumn<float>(k)
                rows |> Array.map (fun r ->
                    let v = series.TryGet r
                    if v.HasValue then v.Value else nan)
            with :? FormatException | :? InvalidCastException | :? InvalidOperationException ->
                invalidArg "frame" (sprintf "Column '%O' is not numeric; convert or drop it before imputing." k))
    let n = frame.RowCount
    Array2D.init n keys.Length (fun i j -> columns[j][i]), keys

/// A frame with the given row keys and column keys holding the (n, p) values (NaN becomes missing).
let ofArray (rowKeys: 'R seq) (columnKeys: 'C seq) (values: float[,]) : Frame<'R, 'C> =
    let rows = Seq.toArray rowKeys
    let cols = Seq.toArray columnKeys
    if rows.Length <> Array2D.length1 values || cols.Length <> Array2D.length2 values then
        invalidArg "values" (sprintf "Expected %d x %d values for the keys given, got %d x %d." rows.Length cols.Length (Array2D.length1 values) (Array2D.length2 values))
    cols
    |> Array.mapi (fun j c -> c, Series(rows, Array.init rows.Length (fun i -> values[i, j])))
    |> Frame.ofColumns

/// Runs `impute` on the numeric values of a frame and returns a frame with the same keys in which every
/// missing value is filled: `impute` takes and returns (n, p) arrays with NaN for missing, such as an
/// imputer's FitTransform.
let impute (impute: float[,] -> float[,]) (frame: Frame<'R, 'C>) : Frame<'R, 'C> =
    let values, keys = toArray frame
    ofArray frame.RowKeys keys (impute values)
