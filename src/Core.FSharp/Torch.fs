module EMFlow.Torch

open TorchSharp

let ping () =
    let a = torch.tensor([| 1.0; 2.0; 3.0 |], dtype = torch.float64)
    (a * a).sum().item<float>()
