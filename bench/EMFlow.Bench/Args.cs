using System.Globalization;

namespace EMFlow.Bench;

/// <summary>"--name value" and "--flag" options of a subcommand.</summary>
internal sealed class Args
{
    public const string Usage = """
        usage: emflow-bench <subcommand> [options]
          estep   batched latent E-step (Gaussian.conditional) against a naive per-row Σ_oo inverse, with its GFLOP/s and
                  that of Gaussian-EM fits (20000 x 16 and 5000 x 90, 20% MCAR) next to the float64 matmul rate
                  --repeats N (5)  --batch B (256)  --no-naive (skip the per-row form)  --no-fit
                  --fit-rows N (20000)  --fit-rows90 N (5000)  --out FILE.jsonl
          fit     one EMFlow fit on a 20000 x 16 synthetic table, 20% MCAR, next to Gaussian EM; throughput at p = 16 and 90
                  --rows N (20000)  --rows90 N (5000)  --out FILE.jsonl
          step    one flow training step (the L1 half of Training.trainStep) of the project's TorchSharp code next to the
                  same step in PyTorch (bench/step/step.py, Debian's python3-torch), same parameters; ms per step and ratio
                  --features 16[,90]  --batch B (256)  --rounds R (3)  --steps N (50)  --warmup W (10)  --python PATH  --out FILE.jsonl
          images  the paper's image protocol (Tables 2 and 3): MCAR per pixel, RMSE on missing test pixels, LeNet accuracy
                  on the completed test images, a PNG grid; MNIST is 8000 train / 2000 test from its 10k test split
                  --dataset mnist|fashion_mnist  --data-dir DIR  --rates .1,.5,.9  --methods mean,nearest,gaussian-em,emflow[,emflow-zero,emflow-checkerboard,emflow-conv,emflow-gem-start]
                  --train N --test M  --iterations I (1)  --epochs E (2)  --width W (128)  --conv-channels C (16)  --ridge R (1e-6)  --gem-sweeps K (3)
                  --classifier-epochs C (3)  --seed S (0)  --quick (500/200 images, rates .5,.9, 1 epoch)
                  --out FILE.jsonl  --markdown FILE.md  --png FILE.png
          images-ridge  scores covariance ridges for `images --ridge` on the training images alone (Gaussian EM fitted on
                  three quarters, completing the last quarter)  --dataset  --train N  --rates .1,.5  --ridges 1e-6,1e-3,1e-2,3e-2,1e-1
                  --method gaussian-em|emflow  --gem-sweeps K (2)  --epochs E (1)  --markdown FILE.md
          images-report  Markdown tables from bench/results/images*.jsonl (or --files a.jsonl,b.jsonl)
          datasets  the default tables of `tables` as a comma-separated list (--quick: the quick pair)
          report  Markdown tables from every bench/results/*.jsonl (--quick for the quick ones)
          converge  time to converge (Figure 2): test RMSE of one fold against training seconds, EMFlow per iteration,
                  the competitors per budget of epochs/iterations; JSON lines, a Markdown summary, docs/convergence-<data>.png
                  --datasets a,b (concrete)  --mechanism mcar|mar (mcar)  --fold F (0)  --iterations K (6)  --methods emflow,emflow-paper,mcflow,gain,miwae
                  --data-dir DIR  --seed S  --quick  --out FILE.jsonl  --plots DIR  --markdown FILE.md
          coverage  multiple imputation: the protocol of `tables` (same masks, folds and seeds), one fit per fold with the
                  library's defaults, RMSE of the point imputation, and the share of hidden values inside the central
                  interval of the draws (order statistics: the 1st smallest to the 1st largest of 20 draws) with its mean width
                  --data-dir DIR  --datasets demo,concrete,breast_cancer,wine_quality (demo: `emflow demo`'s table)
                  --mechanisms mcar,mar  --methods emflow,gaussian-em  --kinds plain,calibrated,proper (plain: the fitted
                  model held fixed; calibrated: EMFlow's spread chosen on its fit's held-out training cells; proper: the
                  Gaussian refitted on a bootstrap resample per draw)  --folds K (5)  --only-folds 0,1  --draws K (20)
                  --seed S (0)  --out FILE.jsonl (bench/results/coverage.jsonl)  --markdown FILE.md
          coverage-report  the Markdown table of bench/results/coverage*.jsonl (--files a.jsonl,b.jsonl; --readme
                  bench/README.md rewrites its coverage section)
          converge-report  the Markdown summary of bench/results/converge.jsonl (--in FILE, --plot to redraw the PNGs,
                  --readme bench/README.md to rewrite its converge section)
          report  Markdown tables from every bench/results/*.jsonl (--quick for the quick ones; --readme bench/README.md
                  rewrites the file's tables and mixed sections, or tables-quick with --quick)
          mixed   the evaluation protocol on tables with categorical columns: each table's target kept as a categorical
                  feature, Wine Quality's colour (rows 1-1599 red) added as one; RMSE of numeric cells, accuracy of
                  categorical ones, every method through MixedImputer; bench/results/mixed-<data>-<mechanism>.jsonl
                  --datasets breast_cancer,wine_quality,spam,letter  --methods mean,knn,gaussian-em,forest,emflow
                  --mechanisms mcar (mcar, mar, mnar)  --folds K (5)  --only-folds 0,1  --seed S (0)  --data-dir DIR  --quick  --out FILE.jsonl
          tables  the evaluation protocol on the benchmark tables, every method, MCAR 0.2 and MAR
                  --data-dir DIR (../shared/data from the repository root)  --datasets a,b  --mechanisms mcar,mar,mar-paper,mnar (mar-paper: MAR at the
                  paper's Table 4 rate of the dataset)
                  --methods m1,m2  --folds K (5)  --only-folds 0,1 (a part of the K folds)  --seed S (0)  --quick  --out FILE.jsonl  --markdown FILE.md
                  --table FILE.csv [--mask FILE.csv] [--fold-ids FILE] [--drop-target]: one table of your own, with
                  an explicit 0/1 mask (header, 1 = missing) and one fold id per row
        """;

    private readonly Dictionary<string, string?> _values = new();

    public Args(string[] args)
    {
        for (int i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--")) throw new ArgumentException($"unexpected argument '{args[i]}'");
            var name = args[i][2..];
            string? value = i + 1 < args.Length && !args[i + 1].StartsWith("--") ? args[++i] : null;
            _values[name] = value;
        }
    }

    public bool Flag(string name) => _values.ContainsKey(name);

    public string? Get(string name) => _values.TryGetValue(name, out var v) ? v : null;

    public int Int(string name, int fallback) =>
        Get(name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;

    public double Double(string name, double fallback) =>
        Get(name) is { } v ? double.Parse(v, CultureInfo.InvariantCulture) : fallback;

    public string[]? List(string name) => Get(name)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
