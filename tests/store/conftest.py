import sys
from pathlib import Path

# the sample ticket state lives with the resumption tests
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "resumption"))
