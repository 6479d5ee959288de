// airlock image import | ls | rm: images brought by users (OCI layouts and
// archives, docker save tars), kept where this user's engine and airlockd
// find them (docs/images.md).
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/verbs.h"
#include "common/error.h"
#include "engine/images.h"
#include "engine/languages.h"
#include "engine/paths.h"
#include "image/image_store.h"

namespace airlock::cli {

namespace {

image::ImageStore store() {
  return image::ImageStore(engine::imported_images_dir(engine::default_cache_dir()));
}

std::string mib(uint64_t bytes) {
  std::ostringstream text;
  text << std::fixed << std::setprecision(1) << static_cast<double>(bytes) / (1 << 20) << " MiB";
  return text.str();
}

std::string joined(const std::vector<std::string>& values) {
  std::string text;
  for (const auto& value : values) text += (text.empty() ? "" : ",") + value;
  return text;
}

}  // namespace

void add_image_verbs(CLI::App& app, Action& action) {
  CLI::App* verb = app.add_subcommand("image", "Import, list and remove your own images (OCI, docker save)");
  verb->require_subcommand(1);

  struct ImportOptions {
    std::string source, name, images;
    bool replace = false, json = false;
    uint64_t max_size_mb = 8192;
  };
  auto import_options = std::make_shared<ImportOptions>();
  CLI::App* import = verb->add_subcommand(
      "import", "Make an image from a docker save tar, an OCI archive or an OCI layout directory");
  import->add_option("source", import_options->source, "The tar or the layout directory")->required();
  import->add_option("--name", import_options->name, "What runs call it (--image NAME)")->required();
  import->add_flag("--replace", import_options->replace, "Put it in place of an imported image of that name");
  import->add_option("--max-size-mb", import_options->max_size_mb,
                     "Refuse an image whose files unpack to more (default 8192)");
  import->add_option("--images", import_options->images,
                     "Path of the image manifest (default: beside the binary)");
  import->add_flag("--json", import_options->json, "Print the image and what the import changed as JSON");
  import->callback([&action, import_options] {
    action = [import_options] {
      const auto& o = *import_options;
  // A built image's name stays the built image's.
  auto catalog = engine::ImageCatalog::load(engine::find_manifest(o.images));
  if (catalog.images().count(o.name)) {
    throw Error(ErrorCode::invalid_argument, "'" + o.name + "' is the name of a built image; pick another");
  }
  image::ImportOptions options;
  options.name = o.name;
  options.replace = o.replace;
  options.limits.max_bytes = o.max_size_mb << 20;
  options.interpreters = engine::language_programs();
  image::ImportResult result = store().import(o.source, options);
  if (o.json) {
    std::cout << nlohmann::json{{"image", image::to_json(result.image)},
                                {"reused", result.reused},
                                {"unpacked_bytes", result.report.bytes},
                                {"entries", result.report.entries},
                                {"dropped", result.report.dropped},
                                {"setid_cleared", result.report.setid_cleared},
                                {"linked", result.report.linked}}
                     .dump()
              << "\n";
    return 0;
  }
  for (const auto& line : result.report.dropped) std::cerr << "airlock: " << line << "\n";
  for (const auto& link : result.report.linked) std::cerr << "airlock: linked " << link << "\n";
  for (const auto& path : result.report.setid_cleared) {
    std::cerr << "airlock: setuid/setgid bit cleared on " << path << "\n";
  }
  std::cout << result.image.name << " " << result.image.digest << " (" << result.image.format
            << "): languages " << joined(result.image.languages) << ", " << mib(result.image.bytes)
            << (result.reused ? ", the same image as one already imported" : "") << "\n";
  return 0;
};
}  // namespace airlock::cli
);

auto ls_json = std::make_shared<bool>(false);
CLI::App* ls = verb->add_subcommand("ls", "List imported images");
ls->add_flag("--json", *ls_json, "One JSON object per line");
ls->callback([&action, ls_json] {
  action = [ls_json] {
    const auto images = store().list();
    if (!*ls_json) {
      std::cout << std::left << std::setw(24) << "NAME" << std::setw(22) << "DIGEST" << std::setw(26)
                << "LANGUAGES" << std::setw(12) << "SIZE"
                << "SOURCE\n";
    }
    for (const auto& image : images) {
      if (*ls_json) {
        std::cout << image::to_json(image).dump() << "\n";
        continue;
      }
      std::cout << std::left << std::setw(24) << image.name << std::setw(22) << image.digest.substr(0, 19)
                << std::setw(26) << joined(image.languages) << std::setw(12) << mib(image.bytes)
                << image.source << "\n";
    }
    return 0;
  };
});

auto rm_names = std::make_shared<std::vector<std::string>>();
CLI::App* rm = verb->add_subcommand("rm", "Remove imported images (running sandboxes keep theirs)");
rm->add_option("name", *rm_names, "Image names")->required();
rm->callback([&action, rm_names] {
  action = [rm_names] {
    for (const auto& name : *rm_names) {
      store().remove(name);
      std::cout << name << "\n";
    }
    return 0;
  };
});
}

}  // namespace airlock::cli
