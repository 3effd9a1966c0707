import os
import sys

sys.path.insert(0, os.path.dirname(__file__))   # tests' own helpers: oracle, bitcheck
os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
