"""tinker-cookbook's supervised training on its shipped conversations file, a few steps.

The cookbook code runs unchanged; this driver only picks the recipe's settings:
`python sl_conversations.py LOG_PATH [MODEL]` (service from TINKER_BASE_URL / TINKER_API_KEY).
"""

from __future__ import annotations

import asyncio
import sys
from importlib import resources

from tinker_cookbook.renderers import TrainOnWhat
from tinker_cookbook.supervised import train
from tinker_cookbook.supervised.data import FromConversationFileBuilder
from tinker_cookbook.supervised.types import ChatDatasetBuilderCommonConfig


def main() -> None:
    log_path = sys.argv[1]
    model = sys.argv[2] if len(sys.argv) > 2 else "tinkex/tiny-byte-lm"
    conversations = resources.files("tinker_cookbook") / "example_data" / "conversations.jsonl"
    common = ChatDatasetBuilderCommonConfig(
        model_name_for_tokenizer=model,
        renderer_name="role_colon",
        max_length=2048,
        batch_size=8,
        train_on_what=TrainOnWhat.ALL_ASSISTANT_MESSAGES,
    )
    config = train.Config(
        log_path=log_path,
        model_name=model,
        recipe_name="tinkex_compat_sl",
        renderer_name="role_colon",
        dataset_builder=FromConversationFileBuilder(
            common_config=common, file_path=str(conversations)
        ),
        learning_rate=1e-3,
        lora_rank=8,
        num_epochs=1,
        max_steps=3,
        eval_every=0,
        save_every=2,
    )
    asyncio.run(train.main(config))


if __name__ == "__main__":
    main()
