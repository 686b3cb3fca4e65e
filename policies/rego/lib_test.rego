package rollout_guard.lib_test

import data.rollout_guard.lib

test_resolve_rounding if {
	lib.resolve("25%", 10, true) == 3
	lib.resolve("25%", 10, false) == 2
	lib.resolve(4, 10, false) == 4
	lib.resolve("4", 10, false) == 4
}
