global using Xunit;
global using EMFlow;

// Torch keeps process-wide state (thread count, live-tensor counters) and the machine has two cores:
// tests run one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
