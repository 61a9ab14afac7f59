// Checking the numbers a policy is given, with errors that name the parameter.
import { PagewireError } from "../errors.js";

export function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new PagewireError("EOPTION", `${name} ${value} must be a positive integer`);
  return value;
}

export function nonNegative(name: string, value: number): number {
  if (!(value >= 0) || !Number.isFinite(value)) throw new PagewireError("EOPTION", `${name} ${value} must be zero or more`);
  return value;
}

export function fraction(name: string, value: number): number {
  if (!(value >= 0 && value < 1)) throw new PagewireError("EOPTION", `${name} ${value} must be at least 0 and below 1`);
  return value;
}
