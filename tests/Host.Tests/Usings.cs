global using Xunit;
global using EMFlow;
