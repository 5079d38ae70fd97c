"""The image models: the FLUX.2 family's contracts, one generation's parameters, prices,
the model port with its multipart body and upstream errors, reference images, and coalescing
of identical calls."""
