// Turns on XNNPACK's weight cache in the pip wheel of ExecuTorch, which has no Python switch.
// The option lives in the process's one backend registry (exported by the library the
// pybindings link: lib/libexecutorch.so), so setting it here affects every program loaded
// afterwards.
#include <executorch/runtime/backend/interface.h>
#include <executorch/runtime/backend/options.h>

#include <variant>

namespace et = executorch::runtime;

static const char kBackend[] = "XnnpackBackend";
static const char kKey[] = "weight_cache_enabled";

extern "C" int lora_tui_set_weight_cache(int enabled) {
  et::BackendOptions<1> options;
  auto err = options.set_option(kKey, enabled != 0);
  if (err != et::Error::Ok) {
    return static_cast<int>(err);
  }
  return static_cast<int>(et::set_option(kBackend, options.view()));
}

// Returns 1 or 0 for the option's value, or a negative error code.
extern "C" int lora_tui_get_weight_cache(void) {
  et::BackendOptions<1> options;
  auto err = options.set_option(kKey, false);
  if (err != et::Error::Ok) {
    return -static_cast<int>(err);
  }
  auto view = options.view();
  err = et::get_option(kBackend, view);
  if (err != et::Error::Ok) {
    return -static_cast<int>(err);
  }
  const bool* value = std::get_if<bool>(&view[0].value);
  return value == nullptr ? -1 : (*value ? 1 : 0);
}
