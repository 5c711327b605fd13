import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Either from "effect/Either"
import * as Option from "effect/Option"

/**
 * A numeric config key, read under both spellings hosts write: nested
 * (`governance.approval_timeout_seconds`: in a map, or as the environment
 * variable `governance_approval_timeout_seconds` with Effect's default
 * provider) and upper case (`GOVERNANCE_APPROVAL_TIMEOUT_SECONDS`). Each is
 * validated where it is given; given under both, they must agree. Absent
 * under both, `fallback`.
 *
 * @internal
 */
export const numberSetting = (
  section: string,
  key: string,
  validation: { readonly message: string; readonly validation: (n: number) => boolean },
  fallback: number
): Config.Config<number> => {
  const spelled = (s: string, k: string) =>
    Config.option(Config.nested(Config.number(k).pipe(Config.validate(validation)), s))
  const upper = [section.toUpperCase(), key.toUpperCase()] as const
  return Config.all([spelled(section, key), spelled(...upper)]).pipe(
    Config.mapOrFail(([nested, upperCase]) =>
      Option.isSome(nested) && Option.isSome(upperCase) && nested.value !== upperCase.value
        ? Either.left(ConfigError.InvalidData(
          [section, key],
          `${section}.${key} is ${nested.value} but ${upper.join("_")} is ${upperCase.value}: give one value`
        ))
        : Either.right(Option.getOrElse(Option.orElse(nested, () => upperCase), () => fallback))
    )
  )
}

