"""The workflow layer: sft, export (merge LoRA), infer, and the seeds' Python inference API."""
