"""The compact CNN as a Hugging Face Hub model: the same network, loadable with `from_pretrained`.

    from hub_model import CompactMnistCNN
    model = CompactMnistCNN.from_pretrained("models")        # or a Hub repository's name
    model.eval()

`python export.py` writes what it reads beside the ONNX file: `model.safetensors` (the committed checkpoint's
weights, no pickle) and `config.json` (the layer spec, dropout and test-time views that rebuild it), both stamped with
the checkpoint's hash. It lives outside model.py so that importing the model costs nothing more.
"""

from __future__ import annotations

from huggingface_hub import PyTorchModelHubMixin

from model import Net


class CompactMnistCNN(
    Net,
    PyTorchModelHubMixin,
    library_name="pytorch",
    tags=["image-classification", "mnist", "compact-cnn"],
    license="mit",
):
    """`model.Net` with the Hub's `from_pretrained` and `save_pretrained`; config.json holds its arguments."""
