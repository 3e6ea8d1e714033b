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

// ---- Packed weights kept in a file (lora_tui/engine/packed.py) ----
// ExecuTorch 1.5's XNNPACK backend can keep packed weights in a file and map them back
// (XNNWeightsCache, "packed_cache_path"), but it reads the path only from per-load backend
// options, which the Python bindings cannot pass. Every load without that option shares
// one in-memory cache instance; giving that instance a path before the first load makes
// every load in this process use the file. The backend's headers are not in the wheel, so
// the two classes are declared here with only the exported member functions we call.
#include <executorch/runtime/core/result.h>

#include <cstring>
#include <memory>
#include <string>

namespace executorch::backends::xnnpack {
namespace delegate {
class XNNWeightsCache {
 public:
  void set_packed_cache_path(const std::string& path);
};
}  // namespace delegate
class XnnpackBackendOptions {
 public:
  executorch::runtime::Error get_option(executorch::runtime::BackendOption& option) const;
  executorch::runtime::Result<std::shared_ptr<delegate::XNNWeightsCache>>
  get_or_create_weights_cache(const std::string& cache_file_path);
};
}  // namespace executorch::backends::xnnpack

namespace xnnpack = executorch::backends::xnnpack;

// Held for the process's life: the backend keeps the shared instance only while someone does.
static std::shared_ptr<xnnpack::delegate::XNNWeightsCache> g_packed_cache;

static int read_weight_cache_at(const xnnpack::XnnpackBackendOptions* options) {
  et::BackendOption option{};
  std::strncpy(option.key, kKey, sizeof(option.key) - 1);
  option.value = false;
  if (options->get_option(option) != et::Error::Ok) {
    return -1;
  }
  const bool* value = std::get_if<bool>(&option.value);
  return value == nullptr ? -1 : (*value ? 1 : 0);
}

// 0 when every program loaded from now on uses the file at `path`; a negative code when
// not (nothing changed then, but the weight cache is left on). Call before the first load.
extern "C" int lora_tui_use_packed_file(const char* path) {
  et::BackendInterface* backend = et::get_backend_class(kBackend);
  if (backend == nullptr) {
    return -1;
  }
  // XnnpackBackend's one data member, its options, sits right after the vtable pointer.
  // Confirm it: the option set through the registry must read back through this pointer,
  // off and on, or we touch nothing.
  auto* options = reinterpret_cast<xnnpack::XnnpackBackendOptions*>(
      reinterpret_cast<char*>(backend) + sizeof(void*));
  for (int wanted : {0, 1}) {
    if (lora_tui_set_weight_cache(wanted) != 0) {
      return -2;
    }
    if (read_weight_cache_at(options) != wanted) {
      lora_tui_set_weight_cache(1);
      return -3;
    }
  }
  auto cache = options->get_or_create_weights_cache(std::string());
  if (!cache.ok()) {
    return -4;
  }
  g_packed_cache = cache.get();
  g_packed_cache->set_packed_cache_path(path);
  return 0;
}
