"""INT8 quantization for the runtime that will run the model."""
