module EMFlow.Tests.MissingnessTests
