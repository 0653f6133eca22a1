namespace EMFlow;
