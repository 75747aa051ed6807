# The two commands of the README: `make run` and `make test`. Everything else is a step of those.
.PHONY: deps build build-debug run test test-unit test-debug bench format clean

JOBS ?= $(shell nproc)

deps:
	@scripts/install-deps

build: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

build-debug: deps
	@cmake --preset debug >/dev/null
	@cmake --build --preset debug -j $(JOBS)

# Embedded mode on 127.0.0.1:8080 with --dev; prints an example to paste.
run: build
	@mkdir -p run
	build/redpacket serve --dev --data-dir run/dev-data

# Every test: unit, end-to-end and real-service tests on the release build, then the unit tests
# again under AddressSanitizer + UndefinedBehaviorSanitizer.
test: build build-debug
	ctest --preset release -j $(JOBS)
	ctest --preset debug -j $(JOBS)

test-unit: build
	ctest --preset release -L unit -j $(JOBS)

bench: build
	bench/run-bench

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf build
