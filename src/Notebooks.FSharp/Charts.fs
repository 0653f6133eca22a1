namespace EMFlow.Notebooks

open System
open System.IO
open Plotly.NET

/// <summary>
/// Shows Plotly.NET charts from a notebook. Inside the .NET Interactive kernel a chart is displayed as
/// <c>text/html</c>; the first chart of a kernel session carries plotly.js itself (the copy bundled in
/// Plotly.NET.dll, v2.28.0), every later one only its div and <c>Plotly.newPlot</c> call. So charts draw without
/// network access, in the saved notebook and in its HTML export. Outside a kernel (<c>dotnet fsi</c>, a script)
/// there is nowhere to show a chart, so it is written to a self-contained HTML file instead.
/// </summary>
/// <remarks>The kernel is reached by reflection, so this assembly has no dependency on .NET Interactive.</remarks>
module Charts =

    /// The kernel's invocation context of the running cell, or None outside a kernel.
    let private kernelContext () =
        AppDomain.CurrentDomain.GetAssemblies()
        |> Array.tryFind (fun a -> a.GetName().Name = "Microsoft.DotNet.Interactive")
        |> Option.bind (fun a ->
            match a.GetType "Microsoft.DotNet.Interactive.KernelInvocationContext", a.GetType "Microsoft.DotNet.Interactive.KernelInvocationContextExtensions" with
            | null, _ | _, null -> None
            | context, extensions ->
                match context.GetProperty "Current", extensions.GetMethod("DisplayAs", [| context; typeof<string>; typeof<string> |]) with
                | null, _ | _, null -> None
                | current, displayAs ->
                    match current.GetValue null with
                    | null -> None
                    | value -> Some(value, displayAs))

    /// True when running inside a .NET Interactive cell.
    let inKernel () = (kernelContext ()).IsSome

    /// Displays <paramref name="value"/> with the given MIME type in the running cell; false outside a kernel.
    let displayAs (mimeType: string) (value: string) =
        match kernelContext () with
        | Some(current, displayAs) ->
            displayAs.Invoke(null, [| current; box value; box mimeType |]) |> ignore
            true
        | _ -> false

    /// The source of plotly.js bundled in Plotly.NET.dll.
    let plotlyJsSource =
        lazy
            (let assembly = typeof<GenericChart>.Assembly
             let resource = assembly.GetManifestResourceNames() |> Array.find (fun n -> n.StartsWith "Plotly.NET.plotly-" && n.EndsWith ".min.js")
             use stream =
                 match assembly.GetManifestResourceStream resource with
                 | null -> failwithf "Plotly.NET.dll has no resource %s" resource
                 | s -> s
             use reader = new StreamReader(stream)
             reader.ReadToEnd())

    /// <summary>
    /// plotly.js as one inline script. It runs with <c>define</c>, <c>module</c> and <c>exports</c> hidden, so it
    /// sets <c>window.Plotly</c> even on a page that loads require.js (classic Jupyter, nbconvert's HTML export).
    /// </summary>
    let plotlyJsScript () =
        "<script type=\"text/javascript\">(function () { var define = undefined, module = undefined, exports = undefined;\n"
        + plotlyJsSource.Value.Replace("</script", "<\\/script")
        + "\n})();</script>"

    let mutable private plotlyJsSent = false

    /// <summary>
    /// The HTML of a chart for the running page: the first call also carries plotly.js, later calls only the
    /// chart's div and script. <see cref="resend"/> makes the next call carry plotly.js again.
    /// </summary>
    let chartHtml (chart: GenericChart) =
        let library =
            if plotlyJsSent then ""
            else
                plotlyJsSent <- true
                plotlyJsScript ()
        library + GenericChart.toChartHTML chart

    /// The next chart carries plotly.js again (for a page that lost the first chart's output, e.g. cleared outputs).
    let resend () = plotlyJsSent <- false

    /// A self-contained HTML page of the chart (plotly.js inline), written to <paramref name="path"/>.
    let saveHtml (path: string) (chart: GenericChart) =
        chart
        |> Chart.withDisplayOptions (DisplayOptions.init (PlotlyJSReference = PlotlyJSReference.Full))
        |> Chart.saveHtml path

    /// <summary>
    /// Grouped bars of category counts: one panel per categorical column, one group of bars per category and one bar
    /// per series, e.g. the observed cells beside the imputed ones, to see whether an imputer keeps a column's
    /// proportions or piles its imputations onto the common categories.
    /// </summary>
    /// <param name="columns">Per categorical column: its name, its K category names, and the series as (name, K
    /// counts), in the order their bars stand; every column has the same series names, so a series keeps one colour
    /// and one legend entry across the panels.</param>
    /// <exception cref="System.ArgumentException">No column, a column without series, or a series whose count of
    /// counts is not the column's number of categories.</exception>
    let categoryCounts (columns: (string * string[] * (string * int[]) list) list) : GenericChart =
        if List.isEmpty columns then invalidArg (nameof columns) "Expected at least one categorical column."
        for name, categories, series in columns do
            if List.isEmpty series then invalidArg (nameof columns) (sprintf "Column '%s' has no series of counts." name)
            for label, counts in series do
                if counts.Length <> categories.Length then
                    invalidArg (nameof columns) (sprintf "Column '%s': series '%s' has %d counts for %d categories." name label counts.Length categories.Length)
        // Plotly colours traces by their index across the whole figure: without fixed colours a series would change
        // colour from one panel to the next.
        let palette = [| "steelblue"; "crimson"; "darkgrey"; "seagreen"; "darkorange"; "purple" |]
        let panel first (name, categories: string[], series: (string * int[]) list) =
            series
            |> List.mapi (fun s (label, counts) ->
                Chart.Column(Array.zip categories counts, Name = label, ShowLegend = first,
                             MarkerColor = Color.fromString palette[s % palette.Length]))
            |> Chart.combine
            |> Chart.withXAxisStyle name
            |> Chart.withYAxisStyle "cells"
        let panels = columns |> List.mapi (fun k column -> panel (k = 0) column)
        let chart = if panels.Length = 1 then panels.Head else Chart.Grid(1, panels.Length) panels
        chart |> Chart.withLayout (Layout.init (BarMode = StyleParam.BarMode.Group))

    /// <summary>
    /// Shows a chart: inline in a .NET Interactive cell; elsewhere written to <c>NOTEBOOK-NAME.html</c> in the
    /// working folder (self-contained), with its path printed. Partially applied, <c>let show = Charts.show "01-missing-data"</c>.
    /// </summary>
    let show (notebook: string) (name: string) (chart: GenericChart) =
        if inKernel () then displayAs "text/html" (chartHtml chart) |> ignore
        else
            let path = Path.GetFullPath(sprintf "%s-%s.html" notebook name)
            saveHtml path chart
            printfn "chart written to %s" path
