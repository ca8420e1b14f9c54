// Xfce's xfconf settings store as xfconfd's per-channel XML backend keeps it: one XML file per
// channel (<channel name=..><property name= type= value=>, properties nested), read from the
// system directories ($XDG_CONFIG_DIRS, /etc/xdg/xfce4/xfconf/xfce-perchannel-xml) and then the
// user's ~/.config/xfce4/xfconf/xfce-perchannel-xml. A user value overrides a system value unless
// a system file locks the channel or the property (Kiosk mode: a "locked" attribute listing users,
// "@groups" or "*", or an "unlocked" attribute listing the only ones who may change it); a locked
// property without a system value falls back to the application's default.
//
// ParseXfconfChannel is pure (GLib's GMarkup does the XML); LookupXfconf folds the layers.
// Property names are case-insensitive in xfconf, so lookups are too.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace vigil::collectors::linux_os {

struct XfconfProperty {
  std::string path;                  // full path as written, e.g. "/saver/idle-activation/delay"
  std::string type;                  // "bool", "int", "uint", "string", "empty", "array", ...
  std::optional<std::string> value;  // the value attribute; nullopt for empty/array
  int line = 0;                      // 1-based line of the <property> element
  // Lock lists in effect for this property: its own, else its nearest ancestor's, else the
  // channel's ("" when none).
  std::string locked;
  std::string unlocked;
};

struct XfconfChannel {
  std::string name;
  std::string locked;
  std::string unlocked;
  std::map<std::string, XfconfProperty> properties;  // keyed by lower-cased path
};

// Parses one channel file. Errors on malformed XML or a document that is not a <channel>.
Result<XfconfChannel> ParseXfconfChannel(std::string_view xml);

// Whether a Kiosk lock applies to `user` (member of `groups`): "locked" lists who may not change
// the value, "unlocked" who may (everyone else may not). Entries are separated by ';', "@name"
// is a group, "*" everyone.
bool XfconfLockApplies(std::string_view locked, std::string_view unlocked, std::string_view user,
                       const std::vector<std::string>& groups);

struct XfconfLayer {
  std::string source;
  bool system = false;  // only system files can lock
  XfconfChannel channel;
};

struct XfconfLookup {
  bool found = false;
  XfconfProperty property;
  std::string source;
  bool locked = false;
  std::string locked_by;  // the system file whose lock applies
};

// What xfconfd returns for `path` to `user`, layers lowest priority (system) first.
XfconfLookup LookupXfconf(const std::vector<XfconfLayer>& layers, std::string_view path,
                          std::string_view user, const std::vector<std::string>& groups);

}  // namespace vigil::collectors::linux_os
