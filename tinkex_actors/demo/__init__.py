"""The main job: fine-tune a LoRA to speak pig latin on the embedded server (SFT or RL).

`run` (the entry point of `tinkex-actors demo`) picks `sft` or `rl`; both stand on `common`
(options, checkpoint log, service and trainer) and `data` (the word pairs); `console` prints.
"""
