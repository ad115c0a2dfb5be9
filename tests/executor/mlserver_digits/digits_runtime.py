"""An MLServer model runtime serving a digits classifier through the Open Inference Protocol.

Loaded by MLServer (in its own virtual environment), never imported by the tests themselves. The
model: scikit-learn's logistic regression on its bundled 8x8 digits (pixels 0..16), trained at load
time on the same split as modipick's digits pool. It takes `image` FP32 [batch, 8, 8, 1] and
answers `probabilities` FP32 [batch, 10].
"""

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class DigitsRuntime(MLModel):
    async def load(self) -> bool:
        from sklearn.datasets import load_digits
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        x_train, _, y_train, _ = train_test_split(digits.data.astype(np.float32), digits.target,
                                                  test_size=0.25, random_state=0, stratify=digits.target)
        self._model = LogisticRegression(max_iter=2000).fit(x_train / 16.0, y_train)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        if len(payload.inputs) != 1:
            raise ValueError(f"expected one input, got {len(payload.inputs)}")
        batch = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (8, 8, 1):
            raise ValueError(f"image must be [batch, 8, 8, 1], got {list(batch.shape)}")
        scores = self._model.predict_proba(batch.reshape(len(batch), -1) / 16.0).astype(np.float32)
        return InferenceResponse(model_name=self.name, model_version=self.version,
                                 outputs=[NumpyCodec.encode_output("probabilities", scores)])
