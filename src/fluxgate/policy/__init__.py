"""What may be generated: the versioned policy document and its store, prompt rules with
their look-alike skeletons, and model-based moderation of prompts and of output images."""
