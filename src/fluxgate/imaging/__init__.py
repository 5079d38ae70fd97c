"""Image bytes as bytes: recognising formats, base64, and the buffer a generated image is
held in. Depends on nothing else in the package."""
