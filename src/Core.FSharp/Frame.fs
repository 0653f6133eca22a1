module EMFlow.Frame
