global using Xunit;
namespace EMFlow.Tests;
public class SmokeTests { [Fact] public void Torch() => Assert.Equal(14.0, EMFlow.Torch.ping()); }
