"""The main job: fine-tune a LoRA to speak pig latin on the embedded server (SFT or RL)."""
