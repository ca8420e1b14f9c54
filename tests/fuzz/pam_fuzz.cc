// Fuzz target: the PAM, pwquality/faillock and shadow parsers must accept any bytes without
// crashing, hanging or reading out of bounds.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "collectors/linux/pam.h"
#include "collectors/linux/pwquality.h"
#include "collectors/linux/shadow.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  using namespace vigil::collectors::linux_os;
  for (const PamLine& line : ParsePamConfig(text)) {
    (void)PamModuleName(line.module);
    (void)PamArgValue(line, "minlen");
    (void)PamHasFlag(line, "nullok");
  }
  QualitySettings s = PwqualityDefaults();
  for (const ConfSetting& c : ParseSecurityConf(text)) {
    (void)ApplyQualitySetting(&s, c.key, c.value, "fuzz", c.text);
  }
  (void)ShortestAcceptedLength(s);
  (void)RequiredClasses(s);
  (void)ParseShadow(text);
  return 0;
}
