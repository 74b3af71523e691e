#include "core/distributed.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>

#include <fmt/format.h>
#include <torch/torch.h>

#include "core/internal/shared_reduce.h"
#include "core/params.h"

#ifdef GFN_WITH_C10D
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace gfn {

namespace {

// The integer in variable `name`, or `fallback` when it is unset; ConfigError for anything else.
std::optional<int64_t> integer_variable(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (*text == '\0' || *end != '\0' || errno == ERANGE)
    throw ConfigError(fmt::format("{}={}: expected an integer", name, text));
  return v;
}

}  // namespace

std::optional<DistributedOptions> distributed_from_environment() {
  const auto world = integer_variable("WORLD_SIZE");
  if (!world) return std::nullopt;
  DistributedOptions o;
  if (*world < 1) throw ConfigError(fmt::format("WORLD_SIZE={}: expected an integer >= 1", *world));
  o.world_size = *world;
  const auto rank = integer_variable("RANK");
  if (!rank && o.world_size > 1) throw ConfigError(fmt::format("WORLD_SIZE={} but RANK is not set", o.world_size));
  o.rank = rank.value_or(0);
  if (o.rank < 0 || o.rank >= o.world_size)
    throw ConfigError(fmt::format("RANK={}: expected an integer in [0, WORLD_SIZE - 1 = {}]", o.rank, o.world_size - 1));
  o.local_rank = integer_variable("LOCAL_RANK").value_or(o.rank);
  if (o.local_rank < 0) throw ConfigError(fmt::format("LOCAL_RANK={}: expected an integer >= 0", o.local_rank));
  if (const char* addr = std::getenv("MASTER_ADDR"); addr != nullptr && *addr != '\0') {
    o.master_addr = addr;
  } else if (o.world_size > 1) {
    throw ConfigError(fmt::format("WORLD_SIZE={} but MASTER_ADDR is not set (the host of rank 0)", o.world_size));
  }
  o.master_port = integer_variable("MASTER_PORT").value_or(29500);
  if (o.master_port < 1 || o.master_port > 65535)
    throw ConfigError(fmt::format("MASTER_PORT={}: expected a port in [1, 65535]", o.master_port));
  return o;
}

template <>
const EnumNames<Transport>& enum_names<Transport>() {
  static const EnumNames<Transport> names{{Transport::kAuto, "auto"}, {Transport::kGloo, "gloo"}};
  return names;
}

uint64_t rank_seed(uint64_t seed, int64_t rank) {
  return rank == 0 ? seed : seed ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(rank));
}

#ifdef GFN_WITH_C10D

bool distributed_available() { return true; }

struct Collective::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  std::unique_ptr<internal::SharedReduceSegment> shared;  // every rank on this machine
  uint64_t calls = 0;                                     // all-reduces through `shared`
};

Collective::Collective(const DistributedOptions& options) : options_(options), impl_(std::make_unique<Impl>()) {
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000));
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(options.master_port);
    so.isServer = options.rank == 0;
    so.numWorkers = static_cast<size_t>(options.world_size);
    so.waitWorkers = true;
    so.timeout = timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(options.master_addr, so);
    auto go = c10d::ProcessGroupGloo::Options::create();
    go->timeout = timeout;
    go->threads = 1;  // one worker: one all-reduce at a time (measured 1.5-1.8 ms against 2.5 with two)
    const std::string& addr = options.master_addr;
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname != nullptr && *ifname != '\0')
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (addr == "localhost" || addr.rfind("127.", 0) == 0)
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      go->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, static_cast<int>(options.rank),
                                                               static_cast<int>(options.world_size), go);
  } catch (const std::exception& e) {
    throw ConfigError(fmt::format("rank {} of {}: cannot join the process group at MASTER_ADDR={} MASTER_PORT={} "
                                  "within {} s (distributed.timeout): {}",
                                  options.rank, options.world_size, options.master_addr, options.master_port,
                                  options.timeout_s, first_line(e)));
  }
}

Collective::~Collective() = default;

namespace {

// The error of rank o.rank when a collective over the group or its store failed with `e`.
std::runtime_error group_failure(const DistributedOptions& o, const std::exception& e) {
  return std::runtime_error(fmt::format("rank {} of {}: the process group failed: a peer exited or did not answer "
                                        "within {} s (distributed.timeout) ({})",
                                        o.rank, o.world_size, o.timeout_s, first_line(e)));
}

// All-reduces (sums) `t` in place; a failure names the rank.
void all_reduce(c10d::ProcessGroupGloo& group, torch::Tensor& t, const DistributedOptions& o) {
  try {
    std::vector<at::Tensor> tensors{t};
    group.allreduce(tensors)->wait();
  } catch (const std::exception& e) {
    throw group_failure(o, e);
  }
}

// Every rank at the same all-reduce (its first, or one larger than the segment): rank 0 creates a
// segment for `capacity` bytes a rank and broadcasts its name, the others map it, and an
// all-reduce of one flag a rank says who could not; the segment is used when every rank could
// (the same answer on every rank), and its name is removed once all have tried. `why` says what
// stopped it otherwise. Over the group, not the store: TCPStore's small requests wait on delayed
// acknowledgements (about 200 ms each on loopback here), Gloo's collectives take 1-2 ms.
std::unique_ptr<internal::SharedReduceSegment> join_shared_segment(c10d::ProcessGroupGloo& group,
                                                                    const DistributedOptions& o, int64_t capacity,
                                                                    std::string* why) {
  std::unique_ptr<internal::SharedReduceSegment> segment;
  auto name = torch::zeros({64}, torch::kUInt8);  // "/gfn-<pid>-<16 hex digits>", NUL-terminated
  if (o.rank == 0) {
    std::random_device device;
    const std::string text = fmt::format("/gfn-{}-{:08x}{:08x}", ::getpid(), device(), device());
    segment = internal::SharedReduceSegment::create(text, o.world_size, capacity, why);
    if (segment) std::memcpy(name.data_ptr(), text.c_str(), text.size());
  }
  std::vector<at::Tensor> names{name};
  group.broadcast(names)->wait();
  const std::string text(reinterpret_cast<const char*>(name.data_ptr()));
  if (o.rank > 0) {
    if (text.empty())
      *why = "rank 0 could not create a shared-memory segment";
    else
      segment = internal::SharedReduceSegment::open(text, o.rank, o.world_size, capacity, why);
  }
  auto failed = torch::zeros({o.world_size}, torch::kInt32);
  failed[o.rank] = segment ? 0 : 1;
  std::vector<at::Tensor> flags{failed};
  group.allreduce(flags)->wait();
  if (o.rank == 0 && !text.empty()) internal::SharedReduceSegment::unlink(text);
  const int32_t* f = failed.data_ptr<int32_t>();
  for (int64_t r = 0; r < o.world_size; ++r) {
    if (f[r] == 0) continue;
    if (segment) *why = fmt::format("rank {} could not map rank 0's shared-memory segment", r);
    else if (r == o.rank && o.rank > 0) *why = fmt::format("rank {}: {}", r, *why);
    segment.reset();
    break;
  }
  return segment;
}

}  // namespace

std::optional<double> Collective::wait_seconds() const {
  if (!impl_->shared) return std::nullopt;
  return wait_s_;
}

void Collective::barrier() {
  try {
    impl_->group->barrier()->wait();
  } catch (const std::exception& e) {
    throw group_failure(options_, e);
  }
}

void Collective::average_gradients(std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  const auto t0 = std::chrono::steady_clock::now();
  // one flat buffer: every gradient (0 where undefined), a flag per parameter, the stop request;
  // float32 when every parameter is (half the bytes of float64), else float64
  bool all_float = true;
  for (const auto& p : params) all_float = all_float && p.scalar_type() == torch::kFloat32;
  const auto options = torch::TensorOptions().dtype(all_float ? torch::kFloat32 : torch::kFloat64);
  const int64_t n_params = static_cast<int64_t>(params.size());
  std::vector<torch::Tensor> parts;
  std::vector<double> flags(n_params + 1, 0.0);
  for (int64_t i = 0; i < n_params; ++i) {
    const auto& g = params[i].grad();
    flags[i] = g.defined() ? 1.0 : 0.0;
    parts.push_back(g.defined() ? g.detach().to(torch::kCPU, options.dtype()).reshape({-1})
                                : torch::zeros({params[i].numel()}, options));
  }
  flags[n_params] = stop_requested_ ? 1.0 : 0.0;
  parts.push_back(torch::tensor(flags, torch::kFloat64).to(options.dtype()));
  auto flat = torch::cat(parts);
  const int64_t bytes = flat.numel() * static_cast<int64_t>(flat.element_size());
  // the first all-reduce agrees on the transport; a larger one than the segment holds (another
  // optimiser's parameters: a component's) gets a larger segment, on every rank at the same call
  const bool first = transport_.empty();
  if ((first && options_.transport == Transport::kAuto) || (impl_->shared && bytes > impl_->shared->capacity())) {
    std::string why;
    try {
      impl_->shared = join_shared_segment(*impl_->group, options_, bytes, &why);
    } catch (const std::exception& e) {
      throw group_failure(options_, e);
    }
    transport_ = impl_->shared ? "shared memory" : "Gloo (" + why + ")";
  } else if (first) {
    transport_ = "Gloo (distributed.transport = \"gloo\")";
  }
  if (impl_->shared) {
    // each rank's buffer into its slot; once all have arrived, the slots' sum in rank order
    const uint64_t call = ++impl_->calls;
    auto& shared = *impl_->shared;
    std::memcpy(shared.slot(call, options_.rank), flat.data_ptr(), static_cast<size_t>(bytes));
    shared.arrive(call);
    wait_s_ += shared.wait_all(call, options_.timeout_s);
    auto slot = [&](int64_t r) { return torch::from_blob(shared.slot(call, r), {flat.numel()}, options); };
    flat.copy_(slot(0));
    for (int64_t r = 1; r < options_.world_size; ++r) flat.add_(slot(r));
  } else {
    all_reduce(*impl_->group, flat, options_);
  }
  auto tail = flat.narrow(0, flat.numel() - n_params - 1, n_params + 1).gt(0).contiguous();
  const bool* had = tail.data_ptr<bool>();
  stop_agreed_ = had[n_params];
  flat.div_(static_cast<double>(options_.world_size));
  int64_t offset = 0;
  for (int64_t i = 0; i < n_params; ++i) {
    auto& p = params[i];
    const int64_t n = p.numel();
    if (had[i]) p.mutable_grad() = flat.narrow(0, offset, n).view(p.sizes()).to(p.device(), p.scalar_type());
    offset += n;
  }
  reduce_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ++reductions_;
}

#else  // built without c10d's Gloo

bool distributed_available() { return false; }

struct Collective::Impl {};

Collective::Collective(const DistributedOptions& options) : options_(options) {
  throw ConfigError(fmt::format("WORLD_SIZE={}: this gfn was built without c10d's Gloo process group (CMake did not "
                                "find libgloo-dev; install it with scripts/setup.sh and configure again)",
                                options.world_size));
}

Collective::~Collective() = default;
void Collective::average_gradients(std::vector<torch::Tensor>&) {}
void Collective::barrier() {}
std::optional<double> Collective::wait_seconds() const { return std::nullopt; }

#endif

}  // namespace gfn
