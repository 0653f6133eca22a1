global using Xunit;
namespace EMFlow.Tests;
public class SmokeTests { [Fact] public void Torch() => Assert.Equal(0.0, 0.0); }
