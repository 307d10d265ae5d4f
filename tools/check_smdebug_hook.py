"""Does train_model.py's Debugger hook (smdebug 1.0.34) still work on this interpreter's torch?

Runs dogclf's own ``DebuggerCallbacks`` the way train_model.py does (the in-script hook config,
written from the dataset sizes; no service config file) on a small ReLU network for a few train and
valid steps, then reads the saved trial back with smdebug and checks that every collection the rules
read has tensors in both modes. Exit status 0 when it works; the report says which torch it ran on.
Used to find the newest training image a user can move to (docs/deploy.md, "Images").

    <python with torch and training/requirements.txt> tools/check_smdebug_hook.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

TRAIN_EXAMPLES, VALID_EXAMPLES, BATCH_SIZE, EPOCHS = 64, 16, 8, 2


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        # No service-side hook config, as in DebuggerMode=in-script: the script writes its own.
        os.environ["SMDEBUG_CONFIG_FILE_PATH"] = str(Path(scratch) / "no-service-config.json")
        import smdebug
        import torch
        from smdebug.trials import create_trial
        from torch import nn

        from dogclf.debugger.hook import DebuggerCallbacks

        torch.manual_seed(0)
        # Named like torchvision's ResNet modules ("...relu"): the relu_input collection's regex matches
        # "<module>_input_<n>" of modules whose name ends in relu.
        model = nn.Sequential(OrderedDict(fc1=nn.Linear(12, 32), relu=nn.ReLU(), fc2=nn.Linear(32, 4)))
        criterion = nn.CrossEntropyLoss()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        callbacks = DebuggerCallbacks(Path(scratch))
        callbacks.on_dataset({"train": TRAIN_EXAMPLES, "valid": VALID_EXAMPLES}, BATCH_SIZE, EPOCHS)
        callbacks.on_model_ready(model, criterion)
        for _ in range(EPOCHS):
            callbacks.set_mode("train")
            for _ in range(TRAIN_EXAMPLES // BATCH_SIZE):
                inputs, labels = torch.randn(BATCH_SIZE, 12), torch.randint(0, 4, (BATCH_SIZE,))
                optimizer.zero_grad()
                loss = criterion(model(inputs), labels)
                loss.backward()
                optimizer.step()
            callbacks.set_mode("valid")
            with torch.no_grad():
                for _ in range(VALID_EXAMPLES // BATCH_SIZE):
                    criterion(model(torch.randn(BATCH_SIZE, 12)), torch.randint(0, 4, (BATCH_SIZE,)))
        callbacks.close()

        trial = create_trial(callbacks.hook.out_dir)
        python = sys.version.split()[0]
        report = {"torch": torch.__version__, "smdebug": smdebug.__version__, "python": python}
        missing = []
        for collection in ("losses", "gradients", "weights", "relu_input"):
            names = trial.tensor_names(collection=collection)
            steps = {step for name in names for step in trial.tensor(name).steps()}
            report[collection] = f"{len(names)} tensors, {len(steps)} steps"
            if not names or not steps:
                missing.append(collection)
        print(report)
        if missing:
            print(f"no tensors saved for {missing}: the hook does not work on this torch", file=sys.stderr)
            return 1
        return 0


if __name__ == "__main__":
    sys.exit(main())
