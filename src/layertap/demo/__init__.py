"""The tutorial CNN this project grew from, generated MNIST-like data, and the `make demo` job."""
