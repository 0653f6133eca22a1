module EMFlow.Scaler
