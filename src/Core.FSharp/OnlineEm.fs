module EMFlow.OnlineEm
