#include "core/component.h"

#include <string>

#include <fmt/format.h>
#include <torch/serialize/archive.h>
#include <torch/torch.h>

#include "core/archive_check.h"
#include "core/file_io.h"

namespace gfn {

std::vector<TrainingComponent*> component_pointers(const Components& components) {
  std::vector<TrainingComponent*> out;
  for (const auto& c : components) out.push_back(c.get());
  return out;
}

void save_model(const std::string& path, const Estimators& estimators, const Components& components,
                int64_t iteration) {
  torch::serialize::OutputArchive archive;
  estimators.write(archive);
  for (const auto& c : components) c->write_model(archive);
  archive.write("iteration", torch::tensor(iteration), /*is_buffer=*/true);
  save_archive(archive, path);
}

int64_t load_model(const std::string& path, Estimators& estimators, const Components& components) {
  torch::serialize::InputArchive archive;
  std::string bytes;
  try {
    bytes = read_file(path);
  } catch (const std::exception& e) {
    throw ConfigError(first_line(e));
  }
  // the sizes the archive declares, before LibTorch allocates them (core/archive_check.h)
  if (const std::string problem = torch_archive_problem(bytes); !problem.empty())
    throw ConfigError(fmt::format("{}: not a gfn model file ({})", path, problem));
  try {
    archive.load_from(bytes.data(), bytes.size());
  } catch (const std::exception& e) {
    throw ConfigError(fmt::format("{}: not a gfn model file ({})", path, first_line(e)));
  }
  estimators.read(archive, path);
  for (const auto& c : components) c->read_model(archive, path);
  return read_archive_entry(archive, path, "iteration", torch::Tensor(), true).item<int64_t>();
}

}  // namespace gfn
