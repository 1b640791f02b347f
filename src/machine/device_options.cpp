#include "machine/device_options.hpp"

#include <algorithm>

namespace strata {

namespace {

// Splits at single commas; ",," is a comma inside an item.
std::vector<std::string> split_items(std::string_view text) {
    std::vector<std::string> items(1);
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != ',') {
            items.back() += text[i];
        } else if (i + 1 < text.size() && text[i + 1] == ',') {
            items.back() += ',';
            ++i;
        } else {
            items.emplace_back();
        }
    }
    return items;
}

}  // namespace

Result<OptionList> OptionList::parse(std::string_view text, bool head_required) {
    std::vector<std::string> items = split_items(text);
    OptionList list;
    list.head_ = std::move(items.front());
    if (head_required && list.head_.empty()) return fail("'{}' starts with an empty item", text);
    for (size_t i = 1; i < items.size(); ++i) {
        const std::string& item = items[i];
        size_t equals = item.find('=');
        if (item.empty()) return fail("'{}' has an empty item (a trailing or doubled comma?)", text);
        if (equals == std::string::npos) return fail("'{}' is not key=value", item);
        if (equals == 0) return fail("'{}' has no key before '='", item);
        list.items_.emplace_back(item.substr(0, equals), item.substr(equals + 1));
    }
    return list;
}

Result<std::optional<std::string>> OptionList::take(std::string_view key) {
    std::vector<std::string> values = take_all(key);
    if (values.size() > 1) return fail("{}= is given {} times; give it once", key, values.size());
    if (values.empty()) return std::optional<std::string>();
    return std::optional<std::string>(std::move(values.front()));
}

std::vector<std::string> OptionList::take_all(std::string_view key) {
    std::vector<std::string> values;
    std::erase_if(items_, [&](const auto& item) {
        if (item.first != key) return false;
        values.push_back(item.second);
        return true;
    });
    return values;
}

Result<void> OptionList::expect_consumed(std::string_view known_keys) const {
    if (items_.empty()) return {};
    return fail("'{}' is not an option here (known: {})", items_.front().first, known_keys);
}

Result<bool> OptionList::parse_switch(std::string_view key, std::string_view value) {
    if (value == "on" || value == "true" || value == "yes") return true;
    if (value == "off" || value == "false" || value == "no") return false;
    return fail("{}='{}' is not on or off", key, value);
}

Result<DiskConfig> parse_disk_option(std::string_view text) {
    auto list = OptionList::parse(text);
    if (!list) return std::unexpected(list.error());
    DiskConfig disk;
    disk.path = list->head();
    auto read_only = list->take("readonly");
    if (!read_only) return std::unexpected(read_only.error());
    if (*read_only) {
        auto on = OptionList::parse_switch("readonly", **read_only);
        if (!on) return std::unexpected(on.error());
        disk.read_only = *on;
    }
    auto serial = list->take("serial");
    if (!serial) return std::unexpected(serial.error());
    if (*serial) disk.serial = **serial;  // its length is checked where the disk is opened
    if (auto r = list->expect_consumed("readonly, serial"); !r) return std::unexpected(r.error());
    return disk;
}

}  // namespace strata
