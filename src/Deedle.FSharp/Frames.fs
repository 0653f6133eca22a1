/// Deedle interop: data frames in and out of the (n, p) arrays the imputers take, with missing values (Deedle's
/// missing, or NaN) mapped to NaN and back. Numeric frames go through any imputer (`impute`); frames with text or
/// declared categorical columns go through a MixedImputer (`imputeMixed`). Named apart from Deedle's own Frame module
/// so that both namespaces can be opened together.
module EMFlow.Frames

open System
open System.Globalization
open Deedle

/// The numeric columns of a frame as an (n, p) array with NaN for missing values, and their keys.
/// Raises ArgumentException naming the first column that is not numeric (convert or drop it first, or impute the
/// frame with `imputeMixed`).
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
                invalidArg "frame" (sprintf "Column '%O' is not numeric; convert or drop it before imputing, or impute the frame with Frames.imputeMixed, which takes text columns as categorical." k))
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

let private numericTypes =
    System.Collections.Generic.HashSet<Type>(
        [ typeof<float>; typeof<float32>; typeof<decimal>; typeof<int>; typeof<int64>; typeof<int16>; typeof<sbyte>
          typeof<uint32>; typeof<uint64>; typeof<uint16>; typeof<byte> ])

/// Values whose equality means "the same category": text, flags, characters and enumerations.
let private isCategoryType (t: Type) = t = typeof<string> || t = typeof<bool> || t = typeof<char> || t.IsEnum

/// A frame in the layout MixedImputer takes.
/// Values: (n, p), NaN where missing, a numeric cell its value (as float), a categorical cell the index of its
/// category in Categories[j]. Keys: the p column keys. Kinds: (p) each column's kind. Categories: per column, its
/// observed values in code order (empty for a numeric column). ColumnTypes: (p) each column's element type in the frame.
type MixedArray<'C> =
    { Values: float[,]
      Keys: 'C[]
      Kinds: ColumnKind[]
      Categories: obj[][]
      ColumnTypes: Type[] }

/// Observed values in a fixed order that does not depend on the order of the rows: by value when every one is a
/// number (declared integer codes), by invariant text otherwise, ties by text.
let private ordered (values: obj seq) : obj[] =
    let distinct = values |> Seq.distinct |> Seq.toArray
    let text (v: obj) = Convert.ToString(v, CultureInfo.InvariantCulture)
    if distinct |> Array.forall (fun v -> numericTypes.Contains(v.GetType())) then
        distinct |> Array.sortWith (fun a b ->
            match compare (Convert.ToDouble(a, CultureInfo.InvariantCulture)) (Convert.ToDouble(b, CultureInfo.InvariantCulture)) with
            | 0 -> String.CompareOrdinal(text a, text b)
            | c -> c)
    else
        distinct |> Array.sortWith (fun a b -> String.CompareOrdinal(text a, text b))

/// Reads a frame of numeric and categorical columns. A column is categorical when its key is in `categorical`, or
/// when its values are text (string), flags (bool), characters or enumerations; a column of numbers (float, int and
/// the other numeric types) is numeric. Two cells of a categorical column are the same category when their values
/// are equal (Equals): "red" and "Red", or 1 and 1.0, are different categories. A missing cell is Deedle's missing
/// (which includes NaN and null) or, in a categorical column, an empty or blank string (what Frame.ReadCsv makes of a
/// blank text cell).
/// Raises ArgumentException naming a column that is neither (a date, say: convert it, declare it categorical or drop
/// it) and a key in `categorical` that is not a column of the frame.
let toMixedArray (categorical: 'C seq) (frame: Frame<'R, 'C>) : MixedArray<'C> =
    if isNull (box frame) then nullArg "frame"
    if isNull (box categorical) then nullArg "categorical"
    let keys = frame.ColumnKeys |> Seq.toArray
    let types = frame.ColumnTypes |> Seq.toArray
    let declared = categorical |> Seq.toArray
    match declared |> Array.tryFind (fun d -> not (Array.contains d keys)) with
    | Some d -> invalidArg "categorical" (sprintf "Column '%O' declared categorical is not in the frame; its columns are %s." d (keys |> Array.map (sprintf "'%O'") |> String.concat ", "))
    | None -> ()
    let rows = frame.RowKeys |> Seq.toArray
    let n = rows.Length
    // Frame.ReadCsv reads a blank text cell as an empty string; Table reads it as missing, and so does this bridge.
    let blank (v: obj) = match v with :? string as t -> String.IsNullOrWhiteSpace t | _ -> false
    let cells (k: 'C) : obj option[] =
        let series = frame.GetColumn<obj>(k)
        rows |> Array.map (fun r ->
            let v = series.TryGet r
            if v.HasValue && not (isNull v.Value) && not (blank v.Value) then Some v.Value else None)
    let kindOf j (values: obj option[] Lazy) =
        let t = types[j]
        if Array.contains keys[j] declared then ColumnKind.Categorical
        elif numericTypes.Contains t then ColumnKind.Numeric
        elif isCategoryType t then ColumnKind.Categorical
        else
            // An object column: what its observed values are decides.
            let observed = values.Value |> Array.choose id
            let valueTypes = observed |> Array.map (fun v -> v.GetType()) |> Array.distinct
            if t = typeof<obj> && valueTypes |> Array.forall numericTypes.Contains then ColumnKind.Numeric
            elif t = typeof<obj> && valueTypes |> Array.forall isCategoryType then ColumnKind.Categorical
            else
                let shown = if t = typeof<obj> then valueTypes |> Array.map (fun v -> v.Name) |> String.concat ", " else t.Name
                invalidArg "frame" (sprintf "Column '%O' holds %s values, neither numbers nor categories; convert it, declare it categorical or drop it." keys[j] shown)
    let columns =
        keys |> Array.mapi (fun j k ->
            let values = lazy (cells k)
            match kindOf j values with
            | ColumnKind.Numeric ->
                let series = frame.GetColumn<float>(k)
                let column = rows |> Array.map (fun r -> let v = series.TryGet r in if v.HasValue then v.Value else nan)
                ColumnKind.Numeric, column, [||]
            | _ ->
                let categories = values.Value |> Array.choose id |> ordered
                let code = categories |> Array.mapi (fun c v -> v, float c) |> dict
                let column = values.Value |> Array.map (function Some v -> code[v] | None -> nan)
                ColumnKind.Categorical, column, categories)
    { Values = Array2D.init n keys.Length (fun i j -> let _, column, _ = columns[j] in column[i])
      Keys = keys
      Kinds = columns |> Array.map (fun (kind, _, _) -> kind)
      Categories = columns |> Array.map (fun (_, _, categories) -> categories)
      ColumnTypes = types }

/// A series of element type `t` (the column's type in the frame it came from), so that a text column comes back as
/// text and GetColumn<string> reads it as before; a null value is missing.
let private typedSeries (rows: 'R[]) (t: Type) (values: obj[]) : ISeries<'R> =
    let typed = Array.CreateInstance(t, values.Length)
    values |> Array.iteri (fun i v -> typed.SetValue(v, i))
    let seriesType = typedefof<Series<_, _>>.MakeGenericType(typeof<'R>, t)
    let ctor = seriesType.GetConstructor([| typeof<System.Collections.Generic.IEnumerable<'R>>; typedefof<System.Collections.Generic.IEnumerable<_>>.MakeGenericType(t) |])
    ctor.Invoke([| box rows; box typed |]) :?> ISeries<'R>

/// The frame of a MixedArray's layout holding `values` (n, p): numeric columns as float series (NaN missing),
/// categorical columns as series of their element type holding the category each code names (NaN missing).
/// Raises ArgumentException when `values` does not have the layout's shape or a categorical cell is not one of its
/// column's codes.
let ofMixedArray (rowKeys: 'R seq) (layout: MixedArray<'C>) (values: float[,]) : Frame<'R, 'C> =
    let rows = Seq.toArray rowKeys
    let p = layout.Keys.Length
    if rows.Length <> Array2D.length1 values || p <> Array2D.length2 values then
        invalidArg "values" (sprintf "Expected %d x %d values for the keys given, got %d x %d." rows.Length p (Array2D.length1 values) (Array2D.length2 values))
    layout.Keys
    |> Array.mapi (fun j key ->
        let series =
            match layout.Kinds[j] with
            | ColumnKind.Numeric -> Series(rows, Array.init rows.Length (fun i -> values[i, j])) :> ISeries<'R>
            | _ ->
                let categories = layout.Categories[j]
                let cells =
                    Array.init rows.Length (fun i ->
                        let v = values[i, j]
                        if Double.IsNaN v then null
                        elif v >= 0.0 && v < float categories.Length && v = Math.Floor v then categories[int v]
                        else invalidArg "values" (sprintf "Row %d, column '%O': %g is not the code of one of the column's %d categories." i key v categories.Length))
                // A value-type column (int codes, flags) with a missing cell has no null to mark it: it comes back
                // as an object column, where null is missing.
                let t = layout.ColumnTypes[j]
                typedSeries rows (if t.IsValueType && Array.exists isNull cells then typeof<obj> else t) cells
        key, series)
    |> Frame.ofColumns

/// Imputes a frame of numeric and categorical columns with a MixedImputer (`toMixedArray` says which columns are
/// which) and returns a frame with the same row and column keys in which every missing cell is filled: numeric cells
/// with the inner imputer's values, categorical cells with one of their column's observed categories (the most
/// probable given the row). Observed cells come back as they were; numeric columns come back as float columns,
/// categorical ones with their element type (a text column as text).
/// The imputer is fitted on the frame (its previous fit, if any, is replaced), with the column keys as column names
/// when their texts are distinct and non-empty.
/// Raises ArgumentException as `toMixedArray`, or as MixedImputer.Fit (a column with no observed value).
let imputeMixed (imputer: MixedImputer) (categorical: 'C seq) (frame: Frame<'R, 'C>) : Frame<'R, 'C> =
    if isNull (box imputer) then nullArg "imputer"
    let layout = toMixedArray categorical frame
    let names = layout.Keys |> Array.map (fun k -> string (box k))
    let distinctNames = names |> Array.forall (String.IsNullOrWhiteSpace >> not) && (names |> Array.distinct).Length = names.Length
    let columnNames = if distinctNames then names :> System.Collections.Generic.IReadOnlyList<string> else null
    let completed = imputer.FitTransform(layout.Values, layout.Kinds, columnNames = columnNames)
    ofMixedArray frame.RowKeys layout completed
