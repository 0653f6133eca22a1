namespace EMFlow

open System

/// Progress of a long fit, reported once per epoch (and once at the start of each phase).
type TrainingProgress =
    { /// What is running: "initial imputation", "training", "re-imputation".
      Phase: string
      /// Current iteration, from 1 (0 during the initial imputation).
      Iteration: int
      /// Iterations planned.
      Iterations: int
      /// Epoch within the iteration, from 1 (0 outside training).
      Epoch: int
      /// Epochs per iteration.
      Epochs: int
      /// Mean L1 loss of the epoch (NaN outside training).
      L1: float
      /// Mean L2 loss of the epoch (NaN outside training).
      L2: float
      /// Time since the fit started.
      Elapsed: TimeSpan }

    /// Fraction of the planned work done, in [0, 1].
    member p.Fraction =
        if p.Iterations * p.Epochs = 0 then 0.0
        else Math.Clamp((float (p.Iteration - 1) * float p.Epochs + float p.Epoch) / (float p.Iterations * float p.Epochs), 0.0, 1.0)
